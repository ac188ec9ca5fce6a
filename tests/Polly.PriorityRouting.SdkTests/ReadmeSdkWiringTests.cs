using System.ClientModel;
using System.ClientModel.Primitives;
using Azure.AI.OpenAI;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;
using OpenAI.Chat;
using Polly.PriorityRouting.SdkTests.Support;

namespace Polly.PriorityRouting.SdkTests;

/// <summary>
/// The README's main usage: the one-line handler, and the SDK on its HttpClient with the SDK's retries off. Every
/// backend answers 429 with a 50 ms retry-after, again as soon as it frees up: a call that can only be exhausted.
/// </summary>
public sealed class ReadmeSdkWiringTests : FakeBackendsTestBase
{
    private const int HandlerRetries = 3;

    private static readonly ChatMessage[] Messages = [new UserChatMessage("Say hello.")];

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task An_exhausted_call_makes_at_most_handler_retries_plus_one_times_backends_calls(bool azure)
    {
        using var provider = ThrottledHandler();
        var recorder = new SdkAttemptRecorder();
        var chat = azure ? AzureChatClient(provider, recorder, sdkRetriesOff: true) : OpenAIChatClient(provider, recorder, sdkRetriesOff: true);

        var act = () => chat.CompleteChatAsync(Messages);

        (await act.Should().ThrowAsync<ClientResultException>()).Which.Status.Should().Be(429);
        recorder.Statuses.Should().Equal([429], "the SDK makes one try and gets the handler's one answer");
        var calls = A.Hits + B.Hits + C.Hits;
        calls.Should().BeInRange(HandlerRetries + 1, (HandlerRetries + 1) * 3, "each of the handler's tries calls each backend at most once");
    }

    [Fact]
    public async Task With_the_SDKs_own_retries_left_on_the_calls_multiply()
    {
        using var provider = ThrottledHandler();
        var recorder = new SdkAttemptRecorder();
        var chat = OpenAIChatClient(provider, recorder, sdkRetriesOff: false);

        var act = () => chat.CompleteChatAsync(Messages);

        (await act.Should().ThrowAsync<ClientResultException>()).Which.Status.Should().Be(429);
        recorder.Statuses.Should().Equal([429, 429, 429, 429], "the SDK retries the handler's exhausted answer 3 times");
        (A.Hits + B.Hits + C.Hits).Should().BeGreaterThan((HandlerRetries + 1) * 3, "why the README turns the SDK's retries off");
    }

    private ServiceProvider ThrottledHandler()
    {
        foreach (var backend in new[] { A, B, C })
        {
            backend.AlwaysThrottledFor = TimeSpan.FromMilliseconds(50);
        }

        var services = new ServiceCollection();
        services.AddSingleton<IBackendStateStore>(new InMemoryBackendStateStore());
        services.AddHttpClient("aoai").AddPriorityRoutingHandler(o =>
        {
            var priority = 1;
            foreach (var backend in new[] { A, B, C })
            {
                o.Routing.Backends.Add(new PriorityBackend
                {
                    Name = backend.Name, BaseAddress = backend.Address, Priority = priority++, Headers = { ["api-key"] = "key-" + backend.Name },
                });
            }
        });
        return services.BuildServiceProvider();
    }

    /// <summary>The README's OpenAI wiring (and, for the contrast, the same with the SDK's retries on).</summary>
    private static ChatClient OpenAIChatClient(IServiceProvider services, SdkAttemptRecorder recorder, bool sdkRetriesOff)
    {
        var options = new OpenAIClientOptions
        {
            Transport = new HttpClientPipelineTransport(services.GetRequiredService<IHttpClientFactory>().CreateClient("aoai")),
            NetworkTimeout = System.Threading.Timeout.InfiniteTimeSpan,
        };
        if (sdkRetriesOff)
        {
            options.RetryPolicy = new ClientRetryPolicy(maxRetries: 0);
        }

        options.AddPolicy(recorder, PipelinePosition.PerTry);
        return new ChatClient("gpt-4o", new ApiKeyCredential("unused"), options);
    }

    /// <summary>The README's Azure OpenAI wiring.</summary>
    private static ChatClient AzureChatClient(IServiceProvider services, SdkAttemptRecorder recorder, bool sdkRetriesOff)
    {
        var options = new AzureOpenAIClientOptions
        {
            Transport = new HttpClientPipelineTransport(services.GetRequiredService<IHttpClientFactory>().CreateClient("aoai")),
            NetworkTimeout = System.Threading.Timeout.InfiniteTimeSpan,
        };
        if (sdkRetriesOff)
        {
            options.RetryPolicy = new ClientRetryPolicy(maxRetries: 0);
        }

        options.AddPolicy(recorder, PipelinePosition.PerTry);
        return new AzureOpenAIClient(new Uri("https://priority-routing.invalid/"), new ApiKeyCredential("unused"), options)
            .GetChatClient("gpt-4o");
    }
}
