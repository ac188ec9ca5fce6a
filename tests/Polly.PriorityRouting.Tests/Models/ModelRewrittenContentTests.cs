using System.Net.Http.Headers;
using System.Text;

namespace Polly.PriorityRouting.Tests.Models;

public class ModelRewrittenContentTests
{
    private const string Body = "{\"messages\":[],\"model\":\"gpt-4o\",\"temperature\":1.0E+0}";

    [Fact]
    public async Task Writes_the_body_with_only_the_value_replaced_and_computes_its_length()
    {
        using var original = new StringContent(Body, Encoding.UTF8, "application/json");
        original.Headers.Add("x-custom", "kept");
        var bytes = Encoding.UTF8.GetBytes(Body);
        var start = Body.IndexOf("\"gpt-4o\"", StringComparison.Ordinal);

        using var content = new ModelRewrittenContent(original, bytes, start, start + 8, new ModelDeployment("gpt-4o-2024-11-20").JsonLiteral);

        (await content.ReadAsStringAsync()).Should().Be("{\"messages\":[],\"model\":\"gpt-4o-2024-11-20\",\"temperature\":1.0E+0}");
        content.Headers.ContentLength.Should().Be(Body.Length + 11);
        content.Headers.ContentType.Should().Be(MediaTypeHeaderValue.Parse("application/json; charset=utf-8"));
        content.Headers.GetValues("x-custom").Should().Equal("kept");
        (await original.ReadAsStringAsync()).Should().Be(Body, "the caller's content is never modified");
    }

    [Fact]
    public void Writes_synchronously_too()
    {
        using var original = new StringContent(Body);
        var bytes = Encoding.UTF8.GetBytes(Body);
        var start = Body.IndexOf("\"gpt-4o\"", StringComparison.Ordinal);
        using var content = new ModelRewrittenContent(original, bytes, start, start + 8, new ModelDeployment("x").JsonLiteral);
        using var stream = new MemoryStream();

        content.CopyTo(stream, null, default);

        Encoding.UTF8.GetString(stream.ToArray()).Should().Be("{\"messages\":[],\"model\":\"x\",\"temperature\":1.0E+0}");
    }

    [Theory]
    [InlineData("gpt-4o", "\"gpt-4o\"")]
    [InlineData("we\"ird\\name", "\"we\\\"ird\\\\name\"")]
    [InlineData("modèle/été", "\"modèle/été\"")]
    public void A_deployment_name_is_written_as_a_valid_json_string(string name, string literal)
        => Encoding.UTF8.GetString(new ModelDeployment(name).JsonLiteral.Span).Should().Be(literal);
}
