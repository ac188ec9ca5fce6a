using System.Globalization;
using System.Text;

namespace Polly.PriorityRouting.Tests.Affinity;

public class ReasoningItemIdMatcherTests
{
    private const string Answer = """
        {
          "id": "resp_1",
          "output": [
            {
              "id": "rs_first",
              "type": "reasoning",
              "encrypted_content": "gAAA \"id\":\"rs_quoted\" {\"id\": \"rs_escaped\"}"
            },
            {"type":"message","id":"msg_1","content":[{"text":"the item_id is rs_text"}]},
            {"item_id":"rs_not_a_key","id":"rs_second","type":"reasoning"}
          ]
        }
        """;

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(7)]
    [InlineData(4096)]
    public void Finds_each_reasoning_item_key_whatever_the_reads_and_nothing_inside_strings(int chunk)
    {
        Find(Encoding.UTF8.GetBytes(Answer), chunk).Should().Equal("rs_first", "rs_second");
    }

    [Fact]
    public void An_item_repeated_by_later_events_is_found_once()
    {
        var stream =
            "data: {\"type\":\"response.output_item.added\",\"item\":{\"id\":\"rs_1\",\"type\":\"reasoning\"}}\n\n" +
            "data: {\"type\":\"response.output_item.done\",\"item\":{\"id\":\"rs_1\",\"type\":\"reasoning\"}}\n\n" +
            "data: {\"type\":\"response.output_item.added\",\"item\":{\"id\":\"rs_2\",\"type\":\"reasoning\"}}\n\n" +
            "data: {\"type\":\"response.completed\",\"response\":{\"output\":[{\"id\":\"rs_1\"},{\"id\":\"rs_2\"}]}}\n\n";

        Find(Encoding.UTF8.GetBytes(stream), 5).Should().Equal("rs_1", "rs_2");
    }

    [Fact]
    public void Finds_at_most_its_cap_of_distinct_ids()
    {
        var many = new StringBuilder("{\"output\":[");
        for (var i = 0; i < 100; i++)
        {
            many.Append(CultureInfo.InvariantCulture, $"{{\"id\":\"rs_{i}\"}},");
        }

        var found = Find(Encoding.UTF8.GetBytes(many.Append("{}]}").ToString()), 64);

        found.Should().Equal(Enumerable.Range(0, ReasoningItemIdMatcher.MaxIds).Select(i => $"rs_{i}"));
    }

    [Fact]
    public void An_overlong_id_is_ignored()
    {
        var body = "{\"id\":\"rs_" + new string('a', AffinityId.MaxLength) + "\"},{\"id\":\"rs_ok\"}";

        Find(Encoding.UTF8.GetBytes(body), 16).Should().Equal("rs_ok");
    }

    private static List<string> Find(byte[] body, int chunk)
    {
        var matcher = new ReasoningItemIdMatcher();
        var found = new List<string>();
        for (var start = 0; start < body.Length; start += chunk)
        {
            var read = body.AsSpan(start, Math.Min(chunk, body.Length - start));
            var offset = 0;
            while (matcher.Next(read, ref offset) is { } id)
            {
                found.Add(id);
            }
        }

        return found;
    }
}
