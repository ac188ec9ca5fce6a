using System.ClientModel;
using System.ClientModel.Primitives;
using System.Text;
using Azure.AI.OpenAI;
using OpenAI.Chat;
using Polly.PriorityRouting.SdkTests.Support;

namespace Polly.PriorityRouting.SdkTests;

/// <summary>Azure.AI.OpenAI's <see cref="AzureOpenAIClient"/> over an <see cref="HttpClient"/> with priority routing.</summary>
public sealed class AzureOpenAISdkTests : FakeBackendsTestBase
{
    private const string Deployment = "gpt-4o-prod";

    private static readonly ChatMessage[] Messages = [new UserChatMessage("Say hello.")];

    [Fact]
    public async Task Failover_keeps_the_deployment_path_and_api_version_and_sends_each_backend_only_its_own_key()
    {
        static string Key(string backend) => $"key-{backend}";
        using var host = RouteOverThrottledTiersWithOwnKeys("api-key", Key);
        var chat = CreateChatClient(host);

        ChatCompletion completion = await chat.CompleteChatAsync(Messages);

        completion.Content.Single().Text.Should().Be("Hello from c.");
        completion.Model.Should().Be(Deployment);
        EachWasCalledOnceWithItsOwnKey("api-key", Key);
        foreach (var backend in new[] { A, B, C })
        {
            var request = backend.Received.Single().Request;
            request.Path.Should().Be($"/openai/deployments/{Deployment}/chat/completions");
            request.Query.Should().Be("?api-version=2024-10-21");
            request.Headers.Should().NotContainKey("Authorization");
        }
    }

    [Fact]
    public async Task A_streamed_completion_fails_over_invisibly()
    {
        A.ThrottleFor(TimeSpan.FromSeconds(30));
        using var host = new SdkClientHost(SdkClientHost.Route((A, 1, "api-key", "key-a"), (B, 2, "api-key", "key-b")));
        var chat = CreateChatClient(host);
        var text = new StringBuilder();

        for (var call = 0; call < 2; call++)
        {
            await foreach (StreamingChatCompletionUpdate update in chat.CompleteChatStreamingAsync(Messages))
            {
                foreach (var part in update.ContentUpdate)
                {
                    text.Append(part.Text);
                }
            }
        }

        text.ToString().Should().Be("Hello from b.Hello from b.");
        (A.Hits, B.Hits).Should().Be((1, 2), "the throttled backend is skipped on the second call");
    }

    [Fact]
    public async Task The_exhausted_answer_reads_as_an_Azure_OpenAI_rate_limit_error()
    {
        A.ThrottleFor(TimeSpan.FromSeconds(30));
        B.ThrottleFor(TimeSpan.FromSeconds(20));
        using var host = new SdkClientHost(SdkClientHost.Route((A, 1, "api-key", "key-a"), (B, 2, "api-key", "key-b")), outerRetry: false);
        var chat = CreateChatClient(host, sdkRetries: 0);

        var act = () => chat.CompleteChatAsync(Messages);

        var error = (await act.Should().ThrowAsync<ClientResultException>()).Which;
        var seconds = error.GetRawResponse()!.Headers.TryGetValue("Retry-After", out var retryAfter) ? retryAfter : "?";
        error.Message.Should().Be(
            $"HTTP 429 (requests: all_backends_throttled)\n\nAll backends are throttled. Retry after {seconds} seconds.");
    }

    internal static ChatClient CreateChatClient(SdkClientHost host, SdkAttemptRecorder? recorder = null, int? sdkRetries = null)
    {
        var options = new AzureOpenAIClientOptions(AzureOpenAIClientOptions.ServiceVersion.V2024_10_21)
        {
            Transport = host.Transport,                     // every call goes through the "aoai" HttpClient
        };
        if (sdkRetries is not null)
        {
            options.RetryPolicy = new ClientRetryPolicy(sdkRetries.Value);
        }

        if (recorder is not null)
        {
            options.AddPolicy(recorder, PipelinePosition.PerTry);
        }

        // The SDK requires an endpoint; any absolute URI does, the routing replaces scheme, host and port per attempt.
        var azure = new AzureOpenAIClient(
            new Uri("https://priority-routing.invalid/"),
            new ApiKeyCredential("placeholder"),            // replaced by each backend's own "api-key" header
            options);
        return azure.GetChatClient(Deployment);
    }
}
