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

    private const string ThreadRunJson = """{"id":"run_1","object":"thread.run","created_at":1,"thread_id":"thread_9","status":"queued"}""";

    private const string ThreadCreatedEvent =
        "event: thread.created\n" +
        """data: {"id":"thread_s","object":"thread","created_at":1,"metadata":{}}""" + "\n\n" +
        "event: thread.run.created\n" +
        """data: {"id":"run_s","object":"thread.run","thread_id":"thread_s"}""" + "\n\n";

    [Theory]
    [InlineData(ResponseJson, false, "resp_1")]
    [InlineData(FileJson, false, "file-abc")]
    [InlineData(CreatedEvent, true, "resp_s")]
    public void Reads_the_created_id(string body, bool eventStream, string id)
    {
        var result = AffinityIdReader.TryRead(Encoding.UTF8.GetBytes(body), eventStream, complete: false, "id", null, out var found, out var parent);

        (result, found, parent).Should().Be((AffinityIdReader.Result.Done, id, (string?)null));
    }

    [Theory]
    [InlineData(ThreadRunJson, false, "run_1", "thread_9")]
    [InlineData(ThreadCreatedEvent, true, "thread_s", null)]
    public void Reads_the_parent_a_nested_create_makes_from_the_same_answer(string body, bool eventStream, string id, string? parent)
    {
        var result = AffinityIdReader.TryRead(Encoding.UTF8.GetBytes(body), eventStream, complete: false, "id", "thread_id", out var foundId, out var foundParent);

        (result, foundId, foundParent).Should().Be((AffinityIdReader.Result.Done, id, parent));
    }

    [Fact]
    public void Reads_a_custom_property()
    {
        var body = Encoding.UTF8.GetBytes("""{"status":"open","sessionId":"sess-42"}""");

        AffinityIdReader.TryRead(body, eventStream: false, complete: false, "sessionId", null, out var id, out _);

        id.Should().Be("sess-42");
    }

    [Theory]
    [InlineData(ResponseJson, false, null)]
    [InlineData(FileJson, false, null)]
    [InlineData(CreatedEvent, true, null)]
    [InlineData(ThreadRunJson, false, "thread_id")]
    public void Every_prefix_too_short_to_hold_the_ids_asks_for_more(string body, bool eventStream, string? parentProperty)
    {
        var bytes = Encoding.UTF8.GetBytes(body);
        for (var length = 0; length <= bytes.Length; length++)
        {
            var result = AffinityIdReader.TryRead(bytes.AsSpan(0, length), eventStream, complete: false, "id", parentProperty, out var id, out var parent);
            if (result == AffinityIdReader.Result.Done)
            {
                id.Should().NotBeNull("a prefix of {0} bytes is not a reason to give up", length);
                (parentProperty is null || parent is not null).Should().BeTrue();
                return;
            }
        }

        throw new InvalidOperationException("The whole body never gave the ids.");
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
        var result = AffinityIdReader.TryRead(Encoding.UTF8.GetBytes(body), eventStream, complete: true, "id", "thread_id", out var id, out var parent);

        (result, id, parent).Should().Be((AffinityIdReader.Result.Done, (string?)null, (string?)null));
    }
}
