using System.Text;

namespace Polly.PriorityRouting.Tests.Affinity;

public class AffinityRequestParserTests
{
    [Theory]
    [InlineData("GET", "http://x/openai/v1/responses/resp_123", "resp_123", nameof(OpenAIAffinityKinds.Response))]
    [InlineData("GET", "https://x/openai/responses/resp_123?api-version=2025-04-01-preview", "resp_123", nameof(OpenAIAffinityKinds.Response))]
    [InlineData("GET", "http://x/v1/responses/resp_123/input_items?limit=2", "resp_123", nameof(OpenAIAffinityKinds.Response))]
    [InlineData("POST", "http://x/v1/responses/resp_123/cancel", "resp_123", nameof(OpenAIAffinityKinds.Response))]
    [InlineData("GET", "/openai/files/file-abc/content?api-version=2024-10-21", "file-abc", nameof(OpenAIAffinityKinds.File))]
    [InlineData("GET", "http://x/gateway/openai/v1/batches/batch_9", "batch_9", nameof(OpenAIAffinityKinds.Batch))]
    [InlineData("POST", "http://x/v1/vector_stores/vs_1/files", "vs_1", nameof(OpenAIAffinityKinds.VectorStore))]
    [InlineData("GET", "http://x/v1/conversations/conv_7/items", "conv_7", nameof(OpenAIAffinityKinds.Conversation))]
    [InlineData("GET", "http://x/v1/containers/cntr_1/files/cfile_2", "cntr_1", nameof(OpenAIAffinityKinds.Container))]
    [InlineData("POST", "http://x/openai/threads/thread_1/runs/run_2?api-version=2024-05-01-preview", "thread_1", nameof(OpenAIAffinityKinds.Thread))]
    [InlineData("GET", "http://x/v1/assistants/asst_1", "asst_1", nameof(OpenAIAffinityKinds.Assistant))]
    public void Finds_the_id_of_a_path(string method, string uri, string id, string kindName)
    {
        var kind = Kind(kindName);
        using var request = new HttpRequestMessage(new HttpMethod(method), new Uri(uri, UriKind.RelativeOrAbsolute));

        var parsed = Read(request);

        parsed.Referenced.Should().Be(new AffinityId(id, kind));
        parsed.Creates.Should().BeNull();
        parsed.DeletesReferenced.Should().BeFalse();
    }

    [Theory]
    [InlineData("http://x/openai/v1/responses", nameof(OpenAIAffinityKinds.Response))]
    [InlineData("http://x/openai/responses?api-version=2025-04-01-preview", nameof(OpenAIAffinityKinds.Response))]
    [InlineData("http://x/v1/files", nameof(OpenAIAffinityKinds.File))]
    [InlineData("http://x/v1/batches", nameof(OpenAIAffinityKinds.Batch))]
    [InlineData("http://x/v1/vector_stores", nameof(OpenAIAffinityKinds.VectorStore))]
    [InlineData("http://x/v1/conversations", nameof(OpenAIAffinityKinds.Conversation))]
    [InlineData("http://x/v1/containers", nameof(OpenAIAffinityKinds.Container))]
    [InlineData("http://x/openai/threads?api-version=2024-05-01-preview", nameof(OpenAIAffinityKinds.Thread))]
    public void A_post_to_a_collection_creates_an_id_of_its_kind(string uri, string kindName)
    {
        var kind = Kind(kindName);
        using var request = new HttpRequestMessage(HttpMethod.Post, uri);

        var parsed = Read(request);

        (parsed.Referenced, parsed.Creates, parsed.DeletesReferenced).Should().Be((default(AffinityId), kind, false));
    }

    [Fact]
    public void A_delete_of_an_id_forgets_it()
    {
        using var request = new HttpRequestMessage(HttpMethod.Delete, "http://x/v1/files/file-abc");

        var parsed = Read(request);

        (parsed.Referenced, parsed.Creates, parsed.DeletesReferenced).Should().Be((new AffinityId("file-abc", OpenAIAffinityKinds.File), (AffinityIdKind?)null, true));
    }

    [Fact]
    public void A_delete_below_an_id_does_not_forget_it()
    {
        using var request = new HttpRequestMessage(HttpMethod.Delete, "http://x/v1/vector_stores/vs_1/files/file-2");

        var parsed = Read(request);

        (parsed.Referenced, parsed.Creates, parsed.DeletesReferenced).Should().Be((new AffinityId("vs_1", OpenAIAffinityKinds.VectorStore), (AffinityIdKind?)null, false));
    }

    [Theory]
    [InlineData("http://x/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21")]
    [InlineData("http://x/v1/chat/completions")]
    [InlineData("http://x/v1/embeddings")]
    [InlineData("http://x/v1/responses/input_tokens")]
    [InlineData("http://x/v1/files/has%20space")]
    public void Requests_without_ids_are_empty(string uri)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, uri);

        Read(request).IsEmpty.Should().BeTrue();
    }

    [Theory]
    [InlineData("""{"model":"gpt-4o","input":"hi","previous_response_id":"resp_1"}""", "resp_1", nameof(OpenAIAffinityKinds.Response))]
    [InlineData("""{"model":"gpt-4o","conversation":"conv_1","input":"hi"}""", "conv_1", nameof(OpenAIAffinityKinds.Conversation))]
    [InlineData("""{"model":"gpt-4o","conversation":{"id":"conv_2"},"input":"hi"}""", "conv_2", nameof(OpenAIAffinityKinds.Conversation))]
    [InlineData("""{"model":"gpt-4o","input":[{"role":"user","content":[{"type":"input_file","file_id":"file-9"}]}]}""", "file-9", nameof(OpenAIAffinityKinds.File))]
    [InlineData("""{"model":"gpt-4o","tools":[{"type":"file_search","vector_store_ids":["vs_3","vs_4"]}]}""", "vs_3", nameof(OpenAIAffinityKinds.VectorStore))]
    [InlineData("""{"model":"gpt-4o","tools":[{"type":"code_interpreter","container":"cntr_5"}]}""", "cntr_5", nameof(OpenAIAffinityKinds.Container))]
    public void Finds_the_id_of_a_responses_body_and_still_learns_the_new_response(string body, string id, string kindName)
    {
        var kind = Kind(kindName);
        using var request = new HttpRequestMessage(HttpMethod.Post, "http://x/v1/responses")
        {
            Content = new StringContent(body, Encoding.UTF8, "application/json"),
        };

        var parsed = Read(request);

        (parsed.Referenced, parsed.Creates, parsed.DeletesReferenced).Should().Be((new AffinityId(id, kind), OpenAIAffinityKinds.Response, false));
    }

    [Fact]
    public void Finds_the_input_file_of_a_batch()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "http://x/openai/batches?api-version=2024-10-21")
        {
            Content = new StringContent("""{"input_file_id":"file-in","endpoint":"/chat/completions","completion_window":"24h"}""", Encoding.UTF8, "application/json"),
        };

        var parsed = Read(request);

        (parsed.Referenced, parsed.Creates).Should().Be((new AffinityId("file-in", OpenAIAffinityKinds.File), OpenAIAffinityKinds.Batch));
    }

    [Fact]
    public void Reading_the_body_leaves_it_readable()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "http://x/v1/responses")
        {
            Content = new StringContent("""{"previous_response_id":"resp_1"}""", Encoding.UTF8, "application/json"),
        };

        Read(request);

        using var reader = new StreamReader(request.Content.ReadAsStream());
        reader.ReadToEnd().Should().Be("""{"previous_response_id":"resp_1"}""");
    }

    [Theory]
    [InlineData("""{"previous_response_id":123}""")]
    [InlineData("""{"previous_response_id":"not an id"}""")]
    [InlineData("""{"metadata":{"previous_response_id":"resp_1"}}""")]
    [InlineData("""{"previous_response_id":"resp_1","store":fal""")]
    [InlineData("""{"input":"previous_response_id"}""")]
    [InlineData("""not json""")]
    public void Bodies_without_a_valid_id_route_normally(string body)
    {
        RequestBodyFacts.Scan(Encoding.UTF8.GetBytes(body)).Referenced.IsEmpty.Should().BeTrue();
    }

    [Fact]
    public void A_chat_body_with_a_user_property_yields_it_as_the_sticky_key()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "http://x/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21")
        {
            Content = new StringContent("""{"messages":[{"role":"user","content":"hi"}],"user":"u-1"}""", Encoding.UTF8, "application/json"),
        };

        var parsed = Read(request);

        (parsed.Referenced.IsEmpty, parsed.Creates, parsed.StickyKey).Should().Be((true, (AffinityIdKind?)null, "u-1"));
    }

    [Fact]
    public void An_overlong_id_is_ignored()
    {
        var id = "resp_" + new string('a', AffinityId.MaxLength);
        using var request = new HttpRequestMessage(HttpMethod.Get, "http://x/v1/responses/" + id);

        Read(request).Referenced.IsEmpty.Should().BeTrue();
    }

    [Fact]
    public void A_chat_completion_allocates_nothing()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "http://x/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21")
        {
            Content = new StringContent("""{"messages":[]}""", Encoding.UTF8, "application/json"),
        };
        Read(request);

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++)
        {
            Read(request);
        }

        (GC.GetAllocatedBytesForCurrentThread() - before).Should().Be(0);
    }

    [Theory]
    [InlineData("http://x/v1/threads/runs")]
    [InlineData("http://x/openai/threads/runs?api-version=2024-05-01-preview")]
    public void Create_thread_and_run_learns_the_thread_from_the_answer_and_routes_by_its_assistant(string uri)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, uri) { Content = new StringContent("""{"assistant_id":"asst_1"}""", Encoding.UTF8, "application/json") };

        var parsed = Read(request);

        (parsed.Referenced, parsed.Creates, parsed.CreatedIdProperty, parsed.CreatedParentIdProperty).Should().Be(
            (new AffinityId("asst_1", OpenAIAffinityKinds.Assistant), OpenAIAffinityKinds.Thread, (string?)null, "thread_id"));
    }

    [Fact]
    public void A_run_created_in_a_thread_routes_by_the_thread_and_is_learned()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "http://x/v1/threads/thread_1/runs") { Content = new StringContent("{}", Encoding.UTF8, "application/json") };

        var parsed = Read(request);

        (parsed.Referenced, parsed.Creates, parsed.CreatedParentIdProperty).Should().Be(
            (new AffinityId("thread_1", OpenAIAffinityKinds.Thread), OpenAIAffinityKinds.Thread, (string?)null));
    }

    [Theory]
    [InlineData("GET", "http://x/v1/threads/runs")]
    [InlineData("POST", "http://x/v1/threads/thread_1/messages")]
    [InlineData("POST", "http://x/v1/threads/thread_1/runs/run_2/cancel")]
    [InlineData("POST", "http://x/v1/vector_stores/vs_1/file_batches")]
    [InlineData("POST", "http://x/v1/containers/cntr_1/files")]
    [InlineData("POST", "http://x/v1/conversations/conv_1/items")]
    public void Children_only_ever_addressed_under_their_parent_are_not_learned(string method, string uri)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), uri);

        Read(request).Creates.Should().BeNull();
    }

    [Fact]
    public void A_reasoning_item_sent_back_in_input_routes_the_request()
    {
        const string Body = """
            {"model":"o4-mini","store":false,"include":["reasoning.encrypted_content"],"input":[
              {"type":"message","role":"user","content":"hi","id":"msg_1"},
              {"type":"reasoning","id":"rs_abc","summary":[],"encrypted_content":"gAAAA"},
              {"type":"message","role":"user","content":"more"}]}
            """;
        using var request = new HttpRequestMessage(HttpMethod.Post, "http://x/v1/responses") { Content = new StringContent(Body, Encoding.UTF8, "application/json") };

        var parsed = Read(request);

        (parsed.Referenced, parsed.Creates, parsed.LearnsReasoningItems).Should().Be((new AffinityId("rs_abc", OpenAIAffinityKinds.ReasoningItem), OpenAIAffinityKinds.Response, true));
    }

    [Theory]
    [InlineData("""{"input":[{"type":"message","id":"msg_1","content":"rs_abc"}]}""")]
    [InlineData("""{"id":"rs_top","input":"hi"}""")]
    [InlineData("""{"input":[{"type":"reasoning","id":"rs_has space"}]}""")]
    public void Only_a_reasoning_item_id_in_the_body_routes(string body)
    {
        RequestBodyFacts.Scan(Encoding.UTF8.GetBytes(body)).Referenced.IsEmpty.Should().BeTrue();
    }

    [Fact]
    public void Only_creates_of_responses_learn_reasoning_items()
    {
        using var files = new HttpRequestMessage(HttpMethod.Post, "http://x/v1/files");
        using var cancel = new HttpRequestMessage(HttpMethod.Post, "http://x/v1/responses/resp_1/cancel");
        using var create = new HttpRequestMessage(HttpMethod.Post, "http://x/v1/responses");

        (Read(files).LearnsReasoningItems, Read(cancel).LearnsReasoningItems, Read(create).LearnsReasoningItems).Should().Be((false, false, true));
    }

    [Theory]
    [InlineData("""{"model":"o4-mini","store":false,"input":"hi"}""", null)]
    [InlineData("""{"input":[{"type":"reasoning","id":"rs_1","encrypted_content":"x"}],"include":["reasoning.encrypted_content"],"store":false}""", null)]
    [InlineData("""{"model":"o4-mini","store":true,"input":"hi"}""", "id")]
    [InlineData("""{"model":"o4-mini","input":"hi","tools":[{"type":"function","parameters":{"store":false}}]}""", "id")]
    [InlineData("""{"model":"o4-mini","input":"hi"}""", "id")]
    public void An_unstored_response_learns_its_reasoning_items_but_not_its_own_id(string body, string? idProperty)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "http://x/v1/responses") { Content = new StringContent(body, Encoding.UTF8, "application/json") };

        var answer = AffinityAnswerIds.Of(Read(request));

        (answer.IdProperty, answer.ReasoningItems).Should().Be((idProperty, true));
    }

    [Theory]
    [InlineData("""{"previous\u005fresponse_id":"resp_1"}""", "resp_1")]
    [InlineData("""{"previous_response_id":"resp\u005f1"}""", "resp_1")]
    [InlineData("""{"previous_response_id":"resp_0","previous_response_id":"resp_1"}""", "resp_1")]
    [InlineData("""{"previous_response_id":"resp_0","previous_response_id":null}""", null)]
    [InlineData("""{"input":[{"type":"reasoning","id":"rs\u005f1"}]}""", "rs_1")]
    [InlineData("""{"messages":[{"role":"user","content":[{"type":"file","file":{"file\u005fid":"file-1"}}]}]}""", "file-1")]
    public void Ids_are_read_as_a_json_parser_reads_them(string body, string? id)
    {
        RequestBodyFacts.Scan(Encoding.UTF8.GetBytes(body)).Referenced.Value.Should().Be(id);
    }

    [Theory]
    [InlineData("""{"user":"u-1","prompt_cache_key":"k-1"}""", "k-1")]
    [InlineData("""{"prompt_cache_key":"k-1","user":"u-1"}""", "k-1")]
    [InlineData("""{"user":"u-1","user":"u-2"}""", "u-2")]
    [InlineData("""{"us\u0065r":"u\u002d1"}""", "u-1")]
    [InlineData("""{"messages":[{"role":"user","user":"nested"}]}""", null)]
    [InlineData("""{"user":""}""", null)]
    public void The_soft_affinity_key_is_the_top_level_prompt_cache_key_else_user(string body, string? key)
    {
        RequestBodyFacts.Scan(Encoding.UTF8.GetBytes(body)).StickyKey.Should().Be(key);
    }

    internal static AffinityIdKind Kind(string name)
        => (AffinityIdKind)typeof(OpenAIAffinityKinds).GetField(name)!.GetValue(null)!;

    private static AffinityRequest Read(HttpRequestMessage request) => AffinityRequestReader.Read(OpenAIAffinityIdExtractor.Instance, request, RequestBody.Of(request));
}
