using System.ClientModel;
using System.Diagnostics;
using System.Globalization;
using OpenAI.Chat;
using Polly.PriorityRouting.SdkTests.Support;
using Xunit.Abstractions;

namespace Polly.PriorityRouting.SdkTests;

/// <summary>
/// Every backend is throttled for about a second (1 or 1.4 s): the call still succeeds once they free up. Who waits —
/// the outer Polly retry or the SDK's own retry, and for how long — depends on the composition and the SDK; an SDK
/// attempt recorder tells which one did.
/// </summary>
public sealed class AllBackendsThrottledTests(ITestOutputHelper output) : FakeBackendsTestBase
{
    private static readonly ChatMessage[] Messages = [new UserChatMessage("Say hello.")];

    [Fact]
    public async Task With_the_documented_composition_the_outer_Polly_retry_waits_and_the_SDK_sees_one_success()
    {
        var (elapsed, _, sdkAttempts, _) = await CallWhileBothThrottledAsync(TimeSpan.FromSeconds(1), outerRetry: true, azure: false);

        elapsed.Should().BeGreaterThan(TimeSpan.FromSeconds(0.9)).And.BeLessThan(TimeSpan.FromSeconds(8));
        // The exhausted 429 is answered inside the HttpClient: the outer retry reads its Retry-After (1 s) and tries
        // again before the SDK sees anything, so the SDK made exactly one attempt and its own retry never ran.
        // Polly's RetryAfterHelper reads only Retry-After (whole seconds): with 1.4 s of throttling it waits 2 s.
        sdkAttempts.Select(a => a.Status).Should().Equal(200);
    }

    [Fact]
    public async Task Without_an_outer_retry_the_OpenAI_SDK_retries_itself_after_Retry_After()
    {
        var (elapsed, _, sdkAttempts, _) = await CallWhileBothThrottledAsync(TimeSpan.FromSeconds(1), outerRetry: false, azure: false);

        elapsed.Should().BeGreaterThan(TimeSpan.FromSeconds(0.9)).And.BeLessThan(TimeSpan.FromSeconds(8));
        // The SDK got the strategy's exhausted 429 and retried it itself, after the advertised delay.
        ShouldBeOneRetryAfterTheExhaustedAnswer(sdkAttempts);
    }

    [Fact]
    public async Task The_OpenAI_SDK_waits_whole_Retry_After_seconds_not_retry_after_ms()
    {
        // 1.4 s of throttling: the exhausted answer says retry-after-ms ≈ 1400 and Retry-After: 2 (rounded up).
        // System.ClientModel's ClientRetryPolicy (OpenAI 2.15 / System.ClientModel 1.16) reads only Retry-After.
        var (elapsed, wait, sdkAttempts, retryAfter) = await CallWhileBothThrottledAsync(TimeSpan.FromSeconds(1.4), outerRetry: false, azure: false);

        // The exhausted answer is computed when both 429s are in: on a slow machine that is later, and its Retry-After
        // may be 1 rather than 2. Whatever it says, the SDK waits all of it, which is longer than retry-after-ms.
        var seconds = TimeSpan.FromSeconds(int.Parse(retryAfter, CultureInfo.InvariantCulture));
        var milliseconds = TimeSpan.FromMilliseconds(long.Parse(sdkAttempts[0].RetryAfterMs!, CultureInfo.InvariantCulture));
        seconds.Should().BeGreaterThan(milliseconds - TimeSpan.FromMilliseconds(TimerSlackMilliseconds), "Retry-After is retry-after-ms rounded up");
        wait.Should().BeGreaterThan(seconds - TimeSpan.FromMilliseconds(15), "the OpenAI SDK waits the whole Retry-After seconds")
            .And.BeLessThan(TimeSpan.FromSeconds(8));
        elapsed.Should().BeLessThan(TimeSpan.FromSeconds(10));
        ShouldBeOneRetryAfterTheExhaustedAnswer(sdkAttempts);
    }

    [Fact]
    public async Task Without_an_outer_retry_the_Azure_SDK_retries_itself_after_retry_after_ms()
    {
        // Azure.AI.OpenAI's own retry policy reads retry-after-ms (and x-ms-retry-after-ms) before Retry-After.
        var (elapsed, wait, sdkAttempts, _) = await CallWhileBothThrottledAsync(TimeSpan.FromSeconds(1.4), outerRetry: false, azure: true);

        wait.Should().BeGreaterThan(TimeSpan.FromSeconds(1.35)).And.BeLessThan(TimeSpan.FromSeconds(1.95));
        elapsed.Should().BeLessThan(TimeSpan.FromSeconds(10));
        ShouldBeOneRetryAfterTheExhaustedAnswer(sdkAttempts);
    }

    /// <summary>What the exhausted answer adds to <c>retry-after-ms</c> for timers that fire early.</summary>
    private const int TimerSlackMilliseconds = 2;

    /// <summary>The longest exhausted answer an SDK coming back a hair early may get on loopback.</summary>
    private const int ShortRetryMilliseconds = 10;

    [Fact]
    public async Task With_no_retry_at_all_the_SDK_surfaces_the_exhausted_answer()
    {
        A.ThrottleFor(TimeSpan.FromSeconds(30));
        B.ThrottleFor(TimeSpan.FromSeconds(20));
        using var host = new SdkClientHost(SdkClientHost.Route((A, 1, null, null), (B, 2, null, null)), outerRetry: false);
        var chat = OpenAISdkTests.CreateChatClient(host, sdkRetries: 0);

        var act = () => chat.CompleteChatAsync(Messages);

        var error = (await act.Should().ThrowAsync<ClientResultException>()).Which;
        error.Status.Should().Be(429);
        var response = error.GetRawResponse()!;
        response.Headers.TryGetValue("Retry-After", out var retryAfter).Should().BeTrue();
        response.Headers.TryGetValue("retry-after-ms", out var retryAfterMs).Should().BeTrue();
        // B, the soonest to free up, counts down from 20 s. retry-after-ms is that time rounded up plus the 2 ms timer
        // slack (so up to 20,002 when the answer comes within a millisecond of B's 429); whole seconds are the time
        // without the slack, rounded up.
        var milliseconds = long.Parse(retryAfterMs!, CultureInfo.InvariantCulture);
        milliseconds.Should().BeInRange(15_000, 20_000 + TimerSlackMilliseconds);
        var seconds = (long)Math.Ceiling((milliseconds - TimerSlackMilliseconds) / 1000.0);
        retryAfter.Should().Be(seconds.ToString(CultureInfo.InvariantCulture));
        response.Content.ToString().Should().Be(
            $"{{\"error\":{{\"message\":\"All backends are throttled. Retry after {seconds} seconds.\",\"type\":\"requests\",\"param\":null,\"code\":\"all_backends_throttled\"}}}}");
        (A.Hits, B.Hits).Should().Be((1, 1));
    }

    /// <summary>
    /// Throttles A (tier 1) and B (tier 2) for <paramref name="duration"/> from their first request, makes one chat
    /// completion through the OpenAI or the Azure SDK, checks that A answered it after exactly one 429 from each, and
    /// returns how long the call took and how long A waited between its 429 and its answer (the server's clock), and
    /// the status of each attempt the SDK itself made.
    /// </summary>
    private async Task<(TimeSpan Elapsed, TimeSpan Wait, (int Status, string? RetryAfterMs)[] SdkAttempts, string FirstRetryAfter)> CallWhileBothThrottledAsync(TimeSpan duration, bool outerRetry, bool azure)
    {
        var stopwatch = Stopwatch.StartNew();
        A.ThrottleFromNextRequestFor(duration);
        B.ThrottleFromNextRequestFor(duration);
        using var host = new SdkClientHost(SdkClientHost.Route((A, 1, "api-key", "key-a"), (B, 2, "api-key", "key-b")), outerRetry);
        var recorder = new SdkAttemptRecorder();
        var chat = azure ? AzureOpenAISdkTests.CreateChatClient(host, recorder) : OpenAISdkTests.CreateChatClient(host, recorder);

        ChatCompletion completion = await chat.CompleteChatAsync(Messages);

        var elapsed = stopwatch.Elapsed;
        var a = A.Received.Select(r => r.Request.ReceivedAt).ToArray();
        var wait = a[^1] - a[0];
        output.WriteLine($"elapsed {elapsed.TotalMilliseconds:F0} ms, A waited {wait.TotalMilliseconds:F0} ms");
        completion.Content.Single().Text.Should().Be("Hello from a.");
        (A.Hits, A.Throttled, B.Hits, B.Throttled).Should().Be((2, 1, 1, 1));
        return (elapsed, wait, [.. recorder.Attempts], recorder.RetryAfter.First()!);
    }

    /// <summary>
    /// The SDK's attempts were the exhausted 429, then its retry's 200 — with, at most once, a short exhausted 429 in
    /// between (<c>retry-after-ms</c> of 1 to <see cref="ShortRetryMilliseconds"/>), and no backend called for it (the
    /// caller asserts the backends' counts). <c>Retry-After</c> (whole seconds, what the OpenAI SDK reads) deliberately
    /// carries no slack: on loopback the SDK's one-second timer can end a few milliseconds before the throttle deadline
    /// (timers fire early, and the deadline was set when the backend's 429 arrived, after the SDK's clock started).
    /// Fresh-clone runs saw 1–3 and 5. On a real network the answer's transit covers it; adding slack to whole seconds
    /// would cost every such client a second. Never 0: a deadline that passes between the strategy's selection and its
    /// exhausted answer makes it select again, not answer "retry after 0".
    /// </summary>
    private static void ShouldBeOneRetryAfterTheExhaustedAnswer((int Status, string? RetryAfterMs)[] attempts)
    {
        attempts[0].Status.Should().Be(429);
        attempts[^1].Status.Should().Be(200);
        attempts.Should().HaveCountLessThanOrEqualTo(3);
        attempts[1..^1].Where(a => !(a.Status == 429 && long.TryParse(a.RetryAfterMs, CultureInfo.InvariantCulture, out var ms) && ms is >= 1 and <= ShortRetryMilliseconds)).Should().BeEmpty();
    }
}
