using System.ClientModel;
using System.ClientModel.Primitives;
using System.Diagnostics;
using OpenAI;
using OpenAI.Chat;
using Polly.PriorityRouting.SdkTests.Support;

namespace Polly.PriorityRouting.SdkTests;

/// <summary>
/// Every backend is throttled for about a second: the call still succeeds after about a second. Who waits depends on
/// the composition, and an SDK attempt recorder tells which one did.
/// </summary>
public sealed class AllBackendsThrottledTests : FakeBackendsTestBase
{
    private static readonly ChatMessage[] Messages = [new UserChatMessage("Say hello.")];

    [Fact]
    public async Task With_the_documented_composition_the_outer_Polly_retry_waits_and_the_SDK_sees_one_success()
    {
        var stopwatch = ThrottleBothForOneSecond();
        using var host = new SdkClientHost(SdkClientHost.Route((A, 1, null, null), (B, 2, null, null)), outerRetry: true);
        var recorder = new SdkAttemptRecorder();
        var chat = OpenAISdkTests.CreateChatClient(host, recorder);

        ChatCompletion completion = await chat.CompleteChatAsync(Messages);

        stopwatch.Elapsed.Should().BeGreaterThan(TimeSpan.FromSeconds(0.9)).And.BeLessThan(TimeSpan.FromSeconds(8));
        completion.Content.Single().Text.Should().Be("Hello from a.");
        // The exhausted 429 is answered inside the HttpClient: the outer retry reads its Retry-After (1 s) and tries
        // again before the SDK sees anything, so the SDK made exactly one attempt and its own retry never ran.
        recorder.Statuses.Should().Equal(200);
        (A.Hits, A.Throttled, B.Hits, B.Throttled).Should().Be((2, 1, 1, 1));
    }

    [Fact]
    public async Task Without_an_outer_retry_the_SDK_own_retry_honours_retry_after_ms()
    {
        var stopwatch = ThrottleBothForOneSecond();
        using var host = new SdkClientHost(SdkClientHost.Route((A, 1, null, null), (B, 2, null, null)), outerRetry: false);
        var recorder = new SdkAttemptRecorder();
        var chat = OpenAISdkTests.CreateChatClient(host, recorder);

        ChatCompletion completion = await chat.CompleteChatAsync(Messages);

        stopwatch.Elapsed.Should().BeGreaterThan(TimeSpan.FromSeconds(0.9)).And.BeLessThan(TimeSpan.FromSeconds(8));
        completion.Content.Single().Text.Should().Be("Hello from a.");
        // The SDK got the strategy's exhausted 429 and retried it itself, after the advertised delay.
        recorder.Statuses.Should().Equal(429, 200);
        (A.Hits, A.Throttled, B.Hits, B.Throttled).Should().Be((2, 1, 1, 1));
    }

    [Fact]
    public async Task With_no_retry_at_all_the_SDK_surfaces_the_exhausted_answer()
    {
        A.ThrottleFor(TimeSpan.FromSeconds(30));
        B.ThrottleFor(TimeSpan.FromSeconds(20));
        using var host = new SdkClientHost(SdkClientHost.Route((A, 1, null, null), (B, 2, null, null)), outerRetry: false);
        var options = new OpenAIClientOptions
        {
            Transport = host.Transport,
            Endpoint = new Uri("http://placeholder/v1"),
            RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
        };
        var chat = new ChatClient("gpt-4o", new ApiKeyCredential("sk-placeholder"), options);

        var act = () => chat.CompleteChatAsync(Messages);

        var error = (await act.Should().ThrowAsync<ClientResultException>()).Which;
        error.Status.Should().Be(429);
        var response = error.GetRawResponse()!;
        response.Headers.TryGetValue("Retry-After", out var retryAfter).Should().BeTrue();
        retryAfter.Should().Be("20");
        response.Headers.TryGetValue("retry-after-ms", out var retryAfterMs).Should().BeTrue();
        long.Parse(retryAfterMs!, System.Globalization.CultureInfo.InvariantCulture).Should().BeInRange(19_000, 20_000);
        response.Content.ToString().Should().StartWith("{\"error\":{\"code\":\"all_backends_throttled\",\"message\":\"All backends are throttled. Retry after 20 seconds.\"}}");
        (A.Hits, B.Hits).Should().Be((1, 1));
    }

    /// <summary>Both backends answer 429 until one second from now; the returned stopwatch runs from now.</summary>
    private Stopwatch ThrottleBothForOneSecond()
    {
        var stopwatch = Stopwatch.StartNew();
        var until = DateTimeOffset.UtcNow.AddSeconds(1);
        A.ThrottleUntil(until);
        B.ThrottleUntil(until);
        return stopwatch;
    }
}
