using System.ClientModel;
using System.ClientModel.Primitives;
using System.Text.Json;
using Azure.AI.OpenAI;
using OpenAI.Batch;
using OpenAI.Files;
using OpenAI.Responses;
using Polly.PriorityRouting.SdkTests.Support;

#pragma warning disable OPENAI001 // The Responses client is an evaluation API of the OpenAI SDK.

namespace Polly.PriorityRouting.SdkTests;

/// <summary>
/// Hard affinity through the one-line handler and the OpenAI SDK's Responses, Files and Batch clients, over three
/// equal-weight backends that each keep their own state and answer 404 for ids they do not hold.
/// </summary>
public sealed class AffinitySdkTests : StatefulBackendsTest
{
    [Theory]
    [InlineData("https://api.openai.com/v1")]
    [InlineData("https://placeholder.openai.azure.com/openai/v1")]
    public async Task Twenty_follow_ups_chained_with_previous_response_id_all_succeed_on_the_origin(string endpoint)
    {
        using var host = new AffinityClientHost(Backends);
        var responses = host.OpenAI(endpoint).GetResponsesClient();

        ResponseResult first = await responses.CreateResponseAsync("gpt-4o", "Hello.", previousResponseId: null);
        var origin = OriginOf(first.Id);
        var previous = first.Id;
        for (var i = 0; i < 20; i++)
        {
            ResponseResult next = await responses.CreateResponseAsync("gpt-4o", $"Follow-up {i}.", previous);
            next.PreviousResponseId.Should().Be(previous);
            OriginOf(next.Id).Should().Be(origin);
            previous = next.Id;
        }

        ResponseResult read = await responses.GetResponseAsync(previous);
        read.Id.Should().Be(previous);
        Backend(origin).Hits.Should().Be(22);
        Backends.Where(b => b.Name != origin).Sum(b => b.Hits).Should().Be(0);
        Backends.Sum(b => b.NotFound).Should().Be(0);
    }

    [Fact]
    public async Task Through_the_Azure_OpenAI_client_a_file_is_read_back_and_deleted_on_its_backend()
    {
        // Azure.AI.OpenAI 2.9.0-beta.1's Responses client does not load with OpenAI 2.15 (MissingMethodException in
        // AzureResponsesClient); its file client does, and uses the Azure URL style (/openai/files?api-version=…).
        using var host = new AffinityClientHost(Backends);
        var azure = new AzureOpenAIClient(
            new Uri("https://placeholder.openai.azure.com/"),
            new ApiKeyCredential("unused"),
            new AzureOpenAIClientOptions(AzureOpenAIClientOptions.ServiceVersion.V2024_10_21)
            {
                Transport = host.Transport,
                RetryPolicy = new ClientRetryPolicy(0),
            });
        var files = azure.GetOpenAIFileClient();

        OpenAIFile file = await files.UploadFileAsync(BinaryData.FromString("{}"), "in.jsonl", FileUploadPurpose.Batch);
        var origin = OriginOf(file.Id);
        for (var i = 0; i < 10; i++)
        {
            OpenAIFile read = await files.GetFileAsync(file.Id);
            read.Id.Should().Be(file.Id);
        }

        FileDeletionResult deleted = await files.DeleteFileAsync(file.Id);
        deleted.Deleted.Should().BeTrue();
        Backend(origin).Received.Should().OnlyContain(r => r.Path.StartsWith("/openai/files", StringComparison.Ordinal) && r.Status == 200);
        Backend(origin).Hits.Should().Be(12);
        Backends.Where(b => b.Name != origin).Sum(b => b.Hits).Should().Be(0);
    }

    [Fact]
    public async Task A_streamed_create_routes_its_id_while_the_stream_is_still_running()
    {
        var pause = new TaskCompletionSource();
        foreach (var backend in Backends)
        {
            backend.StreamPause = pause.Task;
        }

        using var host = new AffinityClientHost(Backends);
        var responses = host.OpenAI().GetResponsesClient();
        var stream = await responses.CreateResponseStreamingAsync("gpt-4o", "Stream, please.", previousResponseId: null);
        await using var updates = ((IAsyncEnumerable<StreamingResponseUpdate>)stream).GetAsyncEnumerator();

        (await updates.MoveNextAsync()).Should().BeTrue();
        var created = updates.Current.Should().BeOfType<StreamingResponseCreatedUpdate>().Subject;
        var id = created.Response.Id;
        var origin = OriginOf(id);

        // The origin has not finished the stream: the follow-up already goes there.
        ResponseResult followUp = await responses.CreateResponseAsync("gpt-4o", "And then?", id);
        OriginOf(followUp.Id).Should().Be(origin);

        pause.SetResult();
        var kinds = new List<Type>();
        while (await updates.MoveNextAsync())
        {
            kinds.Add(updates.Current.GetType());
        }

        kinds.Should().Contain(typeof(StreamingResponseCompletedUpdate));
        Backends.Where(b => b.Name != origin).Sum(b => b.Hits).Should().Be(0);
    }

    [Fact]
    public async Task A_file_uploaded_then_a_batch_created_from_it_are_both_read_back_from_their_backend()
    {
        using var host = new AffinityClientHost(Backends);
        var client = host.OpenAI();
        var files = client.GetOpenAIFileClient();
        var batches = client.GetBatchClient();

        OpenAIFile file = await files.UploadFileAsync(BinaryData.FromString("""{"custom_id":"1","method":"POST","url":"/v1/chat/completions","body":{}}"""), "in.jsonl", FileUploadPurpose.Batch);
        var origin = OriginOf(file.Id);
        for (var i = 0; i < 5; i++)
        {
            OpenAIFile read = await files.GetFileAsync(file.Id);
            read.Filename.Should().Be("in.jsonl");
        }

        var operation = await batches.CreateBatchAsync(
            BinaryContent.Create(BinaryData.FromObjectAsJson(new { input_file_id = file.Id, endpoint = "/v1/chat/completions", completion_window = "24h" })),
            waitUntilCompleted: false);
        var batchId = operation.BatchId;
        OriginOf(batchId).Should().Be(origin);
        for (var i = 0; i < 5; i++)
        {
            var batch = await batches.GetBatchAsync(batchId, new RequestOptions());
            using var json = JsonDocument.Parse(batch.GetRawResponse().Content);
            json.RootElement.GetProperty("input_file_id").GetString().Should().Be(file.Id);
        }

        FileDeletionResult deleted = await files.DeleteFileAsync(file.Id);
        deleted.Deleted.Should().BeTrue();
        Backend(origin).Hits.Should().Be(13, "upload, 5 reads, batch, 5 reads, delete");
        Backends.Where(b => b.Name != origin).Sum(b => b.Hits).Should().Be(0);
    }

    [Fact]
    public async Task A_throttled_origin_answers_the_follow_up_with_its_own_retry_after_and_no_other_backend_sees_it()
    {
        using var host = new AffinityClientHost(Backends);
        var responses = host.OpenAI().GetResponsesClient();
        ResponseResult first = await responses.CreateResponseAsync("gpt-4o", "Hello.", previousResponseId: null);
        var origin = Backend(OriginOf(first.Id));
        origin.ThrottleFor(TimeSpan.FromSeconds(60));

        var call = () => responses.CreateResponseAsync("gpt-4o", "More.", first.Id);

        var error = (await call.Should().ThrowAsync<ClientResultException>()).Which;
        error.Status.Should().Be(429);
        var headers = error.GetRawResponse()!.Headers;
        headers.TryGetValue("Retry-After", out var retryAfter).Should().BeTrue();
        int.Parse(retryAfter!, System.Globalization.CultureInfo.InvariantCulture).Should().BeInRange(58, 60, "the origin's own Retry-After");
        headers.TryGetValue("x-priority-routing-exhausted", out _).Should().BeTrue();
        origin.Received.Select(r => r.Status).Should().Equal([200, 429]);
        Backends.Where(b => b != origin).Sum(b => b.Hits).Should().Be(0);
    }

    [Fact]
    public async Task Creates_without_ids_still_spread_over_every_backend()
    {
        using var host = new AffinityClientHost(Backends);
        var responses = host.OpenAI().GetResponsesClient();

        for (var i = 0; i < 60; i++)
        {
            await responses.CreateResponseAsync("gpt-4o", "Hello.", previousResponseId: null);
        }

        // Weighted-random over three equal backends: each is missed by 60 draws with probability (2/3)^60 < 1e-10.
        Backends.Should().OnlyContain(b => b.Hits > 0);
        Backends.Sum(b => b.Hits).Should().Be(60);
    }

    [Fact]
    public async Task A_prompt_cache_key_keeps_its_creates_on_one_backend_and_moves_when_that_backend_is_throttled()
    {
        using var host = new AffinityClientHost(Backends);
        var responses = host.OpenAI().GetResponsesClient();
        async Task<string> CreateAsync()
        {
            var options = new CreateResponseOptions("gpt-4o", [ResponseItem.CreateUserMessageItem("Hello.")]) { PromptCacheKey = "tenant-7" };
            ResponseResult created = await responses.CreateResponseAsync(options);
            return OriginOf(created.Id);
        }

        var first = await CreateAsync();
        for (var i = 0; i < 9; i++)
        {
            (await CreateAsync()).Should().Be(first);
        }

        Backend(first).ThrottleFor(TimeSpan.FromSeconds(60));
        var moved = await CreateAsync();
        moved.Should().NotBe(first);
        for (var i = 0; i < 5; i++)
        {
            (await CreateAsync()).Should().Be(moved, "the key moved with the request");
        }

        Backend(first).Received.Select(r => r.Status).Should().Equal([.. Enumerable.Repeat(200, 10), 429], "one 429, failed over within the call");
        Backend(moved).Hits.Should().Be(6);
    }

    private static string OriginOf(string id) => id.Split('_', '-')[1][..1];

    private FakeStatefulOpenAIBackend Backend(string name) => Backends.Single(b => b.Name == name);
}
