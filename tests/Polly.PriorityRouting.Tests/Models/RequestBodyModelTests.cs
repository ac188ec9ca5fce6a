using System.Text;

namespace Polly.PriorityRouting.Tests.Models;

public class RequestBodyModelTests
{
    [Fact]
    public void Finds_the_top_level_model_and_the_exact_range_of_its_token()
    {
        const string json = """{"messages":[{"role":"user","content":"hi"}],  "model" :  "gpt-4o" ,"n":1}""";

        Find(json).Should().Be((true, "gpt-4o", "\"gpt-4o\""));
    }

    [Fact]
    public void A_model_inside_messages_tools_or_metadata_is_not_the_requests()
    {
        const string json = """{"messages":[{"model":"m1"}],"metadata":{"model":"m2"},"tools":[[{"model":"m3"}]],"model":"gpt-4o"}""";

        Find(json).Should().Be((true, "gpt-4o", "\"gpt-4o\""));
        Find("""{"messages":[{"model":"m1"}],"metadata":{"model":"m2"}}""").Found.Should().BeFalse();
    }

    [Fact]
    public void An_escaped_value_is_read_unescaped_and_its_whole_token_is_the_range()
    {
        Find("""{"model":"gpt\u002d4o"}""").Should().Be((true, "gpt-4o", "\"gpt\\u002d4o\""));
        Find("""{"mod\u0065l":"gpt-4o"}""").Should().Be((true, "gpt-4o", "\"gpt-4o\""));
    }

    [Fact]
    public void The_last_top_level_model_counts_as_the_services_read_it()
    {
        Find("""{"model":"first","x":1,"model":"second"}""").Should().Be((true, "second", "\"second\""));
        Find("""{"model":"first","model":null}""").Found.Should().BeFalse();
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("[{\"model\":\"gpt-4o\"}]")]
    [InlineData("\"model\"")]
    [InlineData("{\"model\":42}")]
    [InlineData("{\"model\":{\"name\":\"gpt-4o\"}}")]
    [InlineData("{\"model\":\"gpt-4o\"")]
    [InlineData("{\"model\":\"gpt-4o\",}")]
    [InlineData("{\"model\":\"gpt-4o\", oops}")]
    [InlineData("{\"model\":\"\\ud800\"}")]
    [InlineData("model=gpt-4o")]
    public void Anything_else_finds_nothing_and_never_throws(string json)
        => Find(json).Found.Should().BeFalse();

    [Fact]
    public void A_utf8_byte_order_mark_is_skipped_and_the_range_counts_it()
    {
        var bytes = Encoding.UTF8.GetPreamble().Concat(Encoding.UTF8.GetBytes("""{"model":"gpt-4o"}""")).ToArray();

        var facts = RequestBodyFacts.Scan(bytes, readModel: true);

        (facts.Model, facts.ModelStart, facts.ModelEnd).Should().Be(("gpt-4o", 12, 20));
    }

    [Fact]
    public void A_body_nested_deeper_than_the_bound_finds_nothing()
    {
        var deep = "{\"x\":" + new string('[', 300) + new string(']', 300) + ",\"model\":\"gpt-4o\"}";

        Find(deep).Found.Should().BeFalse();
        Find("{\"x\":" + new string('[', 200) + new string(']', 200) + ",\"model\":\"gpt-4o\"}").Found.Should().BeTrue();
    }

    private static (bool Found, string? Model, string? Token) Find(string json)
    {
        var bytes = Encoding.UTF8.GetBytes(json);
        var facts = RequestBodyFacts.Scan(bytes, readModel: true);
        var found = facts.Model is not null;
        return (found, facts.Model, found ? Encoding.UTF8.GetString(bytes, facts.ModelStart, facts.ModelEnd - facts.ModelStart) : null);
    }
}
