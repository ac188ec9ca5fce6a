using System.Text;

namespace Polly.PriorityRouting.Tests.Affinity;

public class AffinityIdReaderTests
{
    private const string ResponseJson = """{"id":"resp_1","object":"response","output":[{"id":"msg_2"}]}""";

    private const string FileJson = """{"object":"file","bytes":120,"filename":"in.jsonl","id":"file-abc","purpose":"batch"}""";

    private const string CreatedEvent =
        "event: response.created\n" +
        """data: {"type":"response.created","sequence_number":0,"response":{"object":"response","id":"resp_s","status":"in_progress"}}""" + "\n\n" +
        "event: response.in_progress\ndata: {}\n\n";

    [Theory]
    [InlineData(ResponseJson, false, "resp_1")]
    [InlineData(FileJson, false, "file-abc")]
    [InlineData(CreatedEvent, true, "resp_s")]
    public void Reads_the_created_id(string body, bool eventStream, string id)
    {
        var result = AffinityIdReader.TryRead(Encoding.UTF8.GetBytes(body), eventStream, complete: false, out var found);

        (result, found).Should().Be((AffinityIdReader.Result.Found, id));
    }

    [Theory]
    [InlineData(ResponseJson, false)]
    [InlineData(FileJson, false)]
    [InlineData(CreatedEvent, true)]
    public void Every_prefix_too_short_to_hold_the_id_asks_for_more(string body, bool eventStream)
    {
        var bytes = Encoding.UTF8.GetBytes(body);
        var found = 0;
        for (var length = 0; length <= bytes.Length; length++)
        {
            var result = AffinityIdReader.TryRead(bytes.AsSpan(0, length), eventStream, complete: false, out var id);
            result.Should().NotBe(AffinityIdReader.Result.None, "a prefix of {0} bytes is not a reason to give up", length);
            if (result == AffinityIdReader.Result.Found)
            {
                id.Should().NotBeNull();
                found++;
            }
        }

        found.Should().BeGreaterThan(0);
    }

    [Theory]
    [InlineData("""{"object":"list","data":[{"id":"resp_nested"}]}""", false)]
    [InlineData("""{"error":{"message":"x","code":"y"}}""", false)]
    [InlineData("""[1,2]""", false)]
    [InlineData("""{"id":42}""", false)]
    [InlineData("<html>", false)]
    [InlineData("data: [DONE]\n\n", true)]
    public void Answers_without_a_top_level_id_have_none(string body, bool eventStream)
    {
        var result = AffinityIdReader.TryRead(Encoding.UTF8.GetBytes(body), eventStream, complete: true, out var id);

        (result, id).Should().Be((AffinityIdReader.Result.None, (string?)null));
    }
}
