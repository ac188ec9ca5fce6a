using System.ClientModel;
using System.ClientModel.Primitives;
using System.Text;
using OpenAI;
using OpenAI.Chat;
using Polly.PriorityRouting.SdkTests.Support;

namespace Polly.PriorityRouting.SdkTests;

/// <summary>The official OpenAI .NET SDK over an <see cref="HttpClient"/> with priority routing.</summary>
public sealed class OpenAISdkTests : FakeBackendsTestBase
{
    private static readonly ChatMessage[] Messages = [new SystemChatMessage("You are terse."), new UserChatMessage("Say hello.")];

    [Fact]
    public async Task A_completion_comes_from_the_priority_1_backend_with_its_own_key()
    {
        using var host = new SdkClientHost(SdkClientHost.Route((A, 1, "Authorization", "Bearer sk-a"), (B, 2, "Authorization", "Bearer sk-b")));
        var chat = CreateChatClient(host);

        ChatCompletion completion = await chat.CompleteChatAsync(Messages);

        completion.Content.Single().Text.Should().Be("Hello from a.");
        completion.Id.Should().Be("chatcmpl-a-1");
        completion.Model.Should().Be("gpt-4o");
        completion.FinishReason.Should().Be(ChatFinishReason.Stop);
        completion.Usage.TotalTokenCount.Should().Be(12);
        (A.Hits, B.Hits).Should().Be((1, 0));
        var request = A.Served.Single();
        (request.Method, request.Path, request.Query).Should().Be(("POST", "/v1/chat/completions", string.Empty));
        request.Headers["Authorization"].Should().Be("Bearer sk-a", "the backend's key replaces the SDK's placeholder key");
        request.Body.Should().Contain("\"model\":\"gpt-4o\"").And.Contain("\"content\":\"Say hello.\"");
    }

    [Fact]
    public async Task Failover_from_a_throttled_priority_1_backend_is_invisible_to_the_SDK_and_remembered()
    {
        A.ThrottleFor(TimeSpan.FromSeconds(30));
        using var host = new SdkClientHost(SdkClientHost.Route((A, 1, null, null), (B, 2, null, null), (C, 3, null, null)));
        var recorder = new SdkAttemptRecorder();
        var chat = CreateChatClient(host, recorder);

        ChatCompletion first = await chat.CompleteChatAsync(Messages);
        ChatCompletion second = await chat.CompleteChatAsync(Messages);

        first.Content.Single().Text.Should().Be("Hello from b.");
        second.Content.Single().Text.Should().Be("Hello from b.");
        (first.Id, second.Id).Should().Be(("chatcmpl-b-1", "chatcmpl-b-2"));
        recorder.Statuses.Should().Equal([200, 200], "the SDK never saw the 429");
        (A.Hits, A.Throttled, B.Hits, C.Hits).Should().Be((1, 1, 2, 0), "the second call skips the remembered throttled backend");
        A.Received.Single().Request.Body.Should().Be(B.Served[0].Body, "the same body is replayed on the next backend");
    }

    [Fact]
    public async Task A_streamed_completion_arrives_whole_from_the_backend_that_took_over()
    {
        A.ThrottleFor(TimeSpan.FromSeconds(30));
        B.Reply = "Streaming works across a failover.";
        using var host = new SdkClientHost(SdkClientHost.Route((A, 1, null, null), (B, 2, null, null)));
        var chat = CreateChatClient(host);
        var text = new StringBuilder();
        var updates = 0;
        ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;

        await foreach (StreamingChatCompletionUpdate update in chat.CompleteChatStreamingAsync(Messages))
        {
            updates++;
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }

            finish ??= update.FinishReason;
            usage ??= update.Usage;
        }

        text.ToString().Should().Be("Streaming works across a failover.");
        updates.Should().Be(8, "role, five words, finish and usage chunks");
        finish.Should().Be(ChatFinishReason.Stop);
        usage!.TotalTokenCount.Should().Be(14);
        (A.Hits, B.Hits).Should().Be((1, 1));
        B.Served.Single().Body.Should().Contain("\"stream\":true");
    }

    [Fact]
    public async Task Streamed_words_reach_the_SDK_while_the_backend_is_still_writing()
    {
        A.ThrottleFor(TimeSpan.FromSeconds(30));
        var pause = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        B.StreamPause = pause.Task;
        using var host = new SdkClientHost(SdkClientHost.Route((A, 1, null, null), (B, 2, null, null)));
        var chat = CreateChatClient(host);
        var words = new List<string>();

        await foreach (StreamingChatCompletionUpdate update in chat.CompleteChatStreamingAsync(Messages))
        {
            words.AddRange(update.ContentUpdate.Select(p => p.Text).Where(t => t.Length > 0));
            if (words.Count == 1)
            {
                pause.Task.IsCompleted.Should().BeFalse("the first word arrived while the backend was paused mid-stream");
                pause.SetResult();
            }
        }

        words.Should().Equal("Hello", " from", " b.");
    }

    [Fact]
    public async Task Each_backend_receives_only_its_own_key()
    {
        static string Key(string backend) => $"Bearer sk-{backend}";
        using var host = RouteOverThrottledTiersWithOwnKeys("Authorization", Key);
        var chat = CreateChatClient(host);

        ChatCompletion completion = await chat.CompleteChatAsync(Messages);

        completion.Content.Single().Text.Should().Be("Hello from c.");
        EachWasCalledOnceWithItsOwnKey("Authorization", Key);
    }

    [Fact]
    public async Task The_exhausted_answer_reads_as_an_OpenAI_rate_limit_error()
    {
        A.ThrottleFor(TimeSpan.FromSeconds(30));
        B.ThrottleFor(TimeSpan.FromSeconds(20));
        using var host = new SdkClientHost(SdkClientHost.Route((A, 1, null, null), (B, 2, null, null)), outerRetry: false);
        var chat = CreateChatClient(host, sdkRetries: 0);

        var act = () => chat.CompleteChatAsync(Messages);

        var error = (await act.Should().ThrowAsync<ClientResultException>()).Which;
        var seconds = error.GetRawResponse()!.Headers.TryGetValue("Retry-After", out var retryAfter) ? retryAfter : "?";
        error.Message.Should().Be(
            $"HTTP 429 (requests: all_backends_throttled)\n\nAll backends are throttled. Retry after {seconds} seconds.");
    }

    /// <param name="host">The routing HttpClient.</param>
    /// <param name="recorder">Records the SDK's own attempts, if given.</param>
    /// <param name="sdkRetries">The SDK's own retries; null keeps its default (3).</param>
    internal static ChatClient CreateChatClient(SdkClientHost host, SdkAttemptRecorder? recorder = null, int? sdkRetries = null)
    {
        // No Endpoint: the SDK's default (https://api.openai.com/v1) only supplies the path; the routing replaces its
        // scheme, host and port per attempt.
        var options = new OpenAIClientOptions
        {
            Transport = host.Transport,                      // every call goes through the "aoai" HttpClient
        };
        if (sdkRetries is not null)
        {
            options.RetryPolicy = new ClientRetryPolicy(sdkRetries.Value);
        }

        if (recorder is not null)
        {
            options.AddPolicy(recorder, PipelinePosition.PerTry);
        }

        return new ChatClient("gpt-4o", new ApiKeyCredential("sk-placeholder"), options);
    }
}
