using System.Diagnostics.Metrics;
using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Budgets;

/// <summary>
/// <see cref="PriorityRoutingStrategyOptions.MaxQueueWait"/>: callers no backend can take wait in the strategy for the
/// room promised them in a refill, first come first served, instead of being answered 429. On a fake clock.
/// </summary>
/// <remarks>
/// Backend "a" reports a 10,000-token budget per 10 s; the first answer says it is spent. <see cref="Chat"/>(3000) costs
/// 3,751 tokens: two fit one refill.
/// </remarks>
public class QueuedWaitTests
{
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(10);

    /// <summary>Only against a hang when a test fails: a released waiter continues on the thread pool.</summary>
    private static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Waiting_callers_are_served_together_when_the_budget_refills_and_not_before()
    {
        using var h = Harness(o => o.MaxQueueWait = Window);
        await SpendTheBudgetAsync(h);

        var first = Post(h, "first", 3000);
        var second = Post(h, "second", 3000);
        first.IsCompleted.Should().BeFalse("the caller waits for the refill instead of a 429");
        second.IsCompleted.Should().BeFalse();

        Advance(h, Window - TimeSpan.FromMilliseconds(1));
        first.IsCompleted.Should().BeFalse();
        Advance(h, TimeSpan.FromMilliseconds(1));

        using var firstResponse = await first;
        using var secondResponse = await second;
        firstResponse.StatusCode.Should().Be(HttpStatusCode.OK);
        secondResponse.StatusCode.Should().Be(HttpStatusCode.OK);
        Callers(h).Should().BeEquivalentTo("spend", "first", "second");
    }

    [Fact]
    public async Task A_newcomer_queues_behind_the_waiting_callers_and_does_not_take_their_refill()
    {
        using var h = Harness(o => o.MaxQueueWait = Window);
        await SpendTheBudgetAsync(h);

        var first = Post(h, "first", 3000);
        Advance(h, TimeSpan.FromSeconds(5));
        var newcomer = Post(h, "newcomer", 3000);
        newcomer.IsCompleted.Should().BeFalse("the budget is spent: the newcomer is promised room after the first caller");

        Advance(h, TimeSpan.FromSeconds(5));
        var late = Post(h, "late", 3000);

        (await first).StatusCode.Should().Be(HttpStatusCode.OK);
        (await newcomer).StatusCode.Should().Be(HttpStatusCode.OK);
        late.IsCompleted.Should().BeFalse("the refill went to the two who waited: the caller arriving with it waits for the next");
        Callers(h).Should().BeEquivalentTo("spend", "first", "newcomer");

        Advance(h, Window);
        (await late).StatusCode.Should().Be(HttpStatusCode.OK);
        Callers(h).Last().Should().Be("late");
    }

    [Fact]
    public void A_waiters_room_is_held_from_newcomers_from_its_refill_on_until_it_spends_it()
    {
        var budgets = new BackendBudgets();
        var key = RoutingHarness.Key("a");
        var now = DateTimeOffset.UnixEpoch;
        using var headers = new HttpResponseMessage();
        headers.Headers.TryAddWithoutValidation("x-ratelimit-remaining-tokens", "0");
        headers.Headers.TryAddWithoutValidation("x-ratelimit-limit-tokens", "10000");
        headers.Headers.TryAddWithoutValidation("x-ratelimit-reset-tokens", "10s");
        budgets.Observe(key, headers.Headers, now, TimeSpan.FromMinutes(1));
        var refill = now + Window;

        var hold = budgets.Hold(new BudgetReservation(key, 8000, refill, "a"))!;
        budgets.CanAdmit(key, 3000, refill).Should().BeFalse("8,000 of the refilled 10,000 are a waiter's, from the refill on");
        budgets.CanAdmit(key, 2000, refill).Should().BeTrue();
        budgets.TimeUntilAdmitted(key, 3000, refill).Should().BePositive();
        budgets.CanAdmit(key, 8000, refill, hold).Should().BeTrue("the waiter itself may spend its room");

        budgets.TryTake(key, 8000, refill, hold).Should().BeTrue();
        budgets.CanAdmit(key, 2000, refill).Should().BeTrue();
        budgets.CanAdmit(key, 2001, refill).Should().BeFalse("the waiter spent its room: it is no longer held, it is gone");
        hold.Release();
        budgets.CanAdmit(key, 2001, refill).Should().BeFalse("releasing a spent hold gives nothing back twice");
    }

    [Fact]
    public void A_released_hold_frees_its_room_for_everyone()
    {
        var budgets = new BackendBudgets();
        var key = RoutingHarness.Key("a");
        var now = DateTimeOffset.UnixEpoch;
        using var headers = new HttpResponseMessage();
        headers.Headers.TryAddWithoutValidation("x-ratelimit-remaining-tokens", "0");
        headers.Headers.TryAddWithoutValidation("x-ratelimit-limit-tokens", "10000");
        headers.Headers.TryAddWithoutValidation("x-ratelimit-reset-tokens", "10s");
        budgets.Observe(key, headers.Headers, now, TimeSpan.FromMinutes(1));

        var hold = budgets.Hold(new BudgetReservation(key, 8000, now + Window, "a"))!;
        hold.Release();
        hold.Release();

        budgets.CanAdmit(key, 10_000, now + Window).Should().BeTrue();
    }

    [Fact]
    public async Task The_caller_beyond_the_bound_is_answered_at_once_with_the_moment_it_was_promised()
    {
        using var h = Harness(o => o.MaxQueueWait = Window);
        await SpendTheBudgetAsync(h);

        var first = Post(h, "first", 3000);
        var second = Post(h, "second", 3000);
        using var third = await Post(h, "third", 3000);

        third.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        third.Headers.GetValues("retry-after-ms").Single().Should().Be("20002", "the refill at 10 s is the waiters'; the next, at 20 s, has room");
        third.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(20));
        first.IsCompleted.Should().BeFalse();

        Advance(h, Window);
        (await first).StatusCode.Should().Be(HttpStatusCode.OK);
        (await second).StatusCode.Should().Be(HttpStatusCode.OK);
        Callers(h).Should().BeEquivalentTo("spend", "first", "second");
    }

    [Fact]
    public async Task A_cancelled_waiter_ends_at_once_marks_nothing_and_gives_its_place_to_the_next_caller()
    {
        using var h = Harness(o => o.MaxQueueWait = Window);
        await SpendTheBudgetAsync(h);
        var marked = h.StateOf("a");
        using var cancellation = new CancellationTokenSource();

        var cancelled = Post(h, "cancelled", 3000, cancellation.Token);
        var second = Post(h, "second", 3000);
        await cancellation.CancelAsync();

        var thrown = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        thrown.Should().NotBeNull();
        h.Store.Count.Should().Be(1, "only the spent budget's own mark");
        h.StateOf("a").Should().Be(marked, "a caller who gave up says nothing about the backend");

        var third = Post(h, "third", 3000);
        third.IsCompleted.Should().BeFalse("the cancelled caller's room in the refill is the third's now");

        Advance(h, Window);
        (await second).StatusCode.Should().Be(HttpStatusCode.OK);
        (await third).StatusCode.Should().Be(HttpStatusCode.OK);
        Callers(h).Should().BeEquivalentTo("spend", "second", "third");
    }

    [Fact]
    public async Task A_hinted_request_waits_for_its_allowed_backend_only()
    {
        using var h = Harness(o => o.MaxQueueWait = Window, RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 1));
        h.Transport.Respond("b", _ => new HttpResponseMessage(HttpStatusCode.OK));
        await SpendTheBudgetAsync(h);

        using var request = new HttpRequestMessage(HttpMethod.Post, "/") { Content = Chat(3000) };
        request.Headers.Add("x-caller", "hinted");
        request.Options.Set(PriorityRoutingRequestOptions.Hints, new PriorityRoutingHints { OnlyBackends = ["a"] });
        var hinted = h.Client.SendAsync(request);
        hinted.IsCompleted.Should().BeFalse("b has room, but the request may only use a");

        Advance(h, Window);
        (await hinted).StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("a", "a");
    }

    [Fact]
    public async Task A_waiter_takes_another_backends_sooner_refill_when_the_soonest_one_is_promised_in_full()
    {
        using var h = Harness(o => o.MaxQueueWait = TimeSpan.FromSeconds(16), RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 1));
        h.Transport.Respond("b", _ =>
        {
            var response = new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent("{}") };
            response.Headers.TryAddWithoutValidation("x-ratelimit-remaining-tokens", "0");
            response.Headers.TryAddWithoutValidation("x-ratelimit-limit-tokens", "10000");
            response.Headers.TryAddWithoutValidation("x-ratelimit-reset-tokens", "15s");
            return response;
        });
        await SpendTheBudgetAsync(h);
        (await Post(h, "spend b", 100)).Dispose();

        var first = Post(h, "first", 3000);
        var second = Post(h, "second", 3000);
        var third = Post(h, "third", 3000);
        third.IsCompleted.Should().BeFalse("a's refill at 10 s is promised in full, b's at 15 s has room within the bound");

        Advance(h, Window);
        (await first).StatusCode.Should().Be(HttpStatusCode.OK);
        (await second).StatusCode.Should().Be(HttpStatusCode.OK);
        third.IsCompleted.Should().BeFalse();
        Advance(h, TimeSpan.FromSeconds(5));

        (await third).StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("a", "b", "a", "a", "b");
    }

    [Fact]
    public async Task A_newcomer_arriving_between_the_refill_and_a_late_queue_timer_does_not_take_the_waiters_room()
    {
        var time = new LateTimerTimeProvider(RoutingHarness.Start);
        using var h = Harness(o => o.MaxQueueWait = Window, time);
        await SpendTheBudgetAsync(h);
        var first = Post(h, "first", 3000);
        var second = Post(h, "second", 3000);

        // The refill comes, but the queue's timer fires late: the room is the waiters' all the same.
        time.TimersAreLate = true;
        Advance(h, Window);
        var newcomer = Post(h, "newcomer", 3000);
        newcomer.IsCompleted.Should().BeFalse("7,502 of the refilled 10,000 tokens are promised to the two waiters");
        Callers(h).Should().Equal("spend");

        time.FireLateTimers();
        (await first.WaitAsync(HangGuard)).StatusCode.Should().Be(HttpStatusCode.OK);
        (await second.WaitAsync(HangGuard)).StatusCode.Should().Be(HttpStatusCode.OK);
        newcomer.IsCompleted.Should().BeFalse();
        Callers(h).Should().BeEquivalentTo("spend", "first", "second");

        Advance(h, Window);
        (await newcomer.WaitAsync(HangGuard)).StatusCode.Should().Be(HttpStatusCode.OK);
    }

    [Fact]
    public async Task A_cancelled_waiters_room_goes_to_the_next_waiter_not_to_a_later_arrival()
    {
        using var h = Harness(o => o.MaxQueueWait = TimeSpan.FromSeconds(25));
        await SpendTheBudgetAsync(h);
        using var cancellation = new CancellationTokenSource();
        var cancelled = Post(h, "cancelled", 3000, cancellation.Token);
        var second = Post(h, "second", 3000);
        var third = Post(h, "third", 3000);
        third.IsCompleted.Should().BeFalse("the refill at 10 s is full: the third is promised the one at 20 s");

        await cancellation.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        Advance(h, Window);
        var late = Post(h, "late", 3000);

        (await second.WaitAsync(HangGuard)).StatusCode.Should().Be(HttpStatusCode.OK);
        (await third.WaitAsync(HangGuard)).StatusCode.Should().Be(HttpStatusCode.OK, "the cancelled caller's room at 10 s went to the next waiter");
        late.IsCompleted.Should().BeFalse("a caller arriving with the refill queues behind the waiters");
        Callers(h).Should().BeEquivalentTo("spend", "second", "third");

        Advance(h, Window);
        (await late.WaitAsync(HangGuard)).StatusCode.Should().Be(HttpStatusCode.OK);
    }

    [Fact]
    public async Task A_second_wait_is_promised_a_refill_within_what_is_left_of_the_bound()
    {
        // a refills every 2 s; b once, at 11 s. The caller "x" (6,262 tokens) waits 2 s for a, is throttled there, and
        // waits again: 8 s of its 10 s bound are left. a's refill at 4 s is promised to f1 and f2; a's next, at 6 s, has
        // room; b's at 11 s has room too, but lies beyond what is left of the bound.
        using var h = Harness(o => o.MaxQueueWait = Window, RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 1));
        var throttledX = 0;
        h.Transport.Respond("a", request => Caller(request) switch
        {
            "prime" => Budget(remaining: 0, reset: "2s"),
            "x" when Interlocked.Increment(ref throttledX) == 1 => new HttpResponseMessage(HttpStatusCode.TooManyRequests) { Headers = { { "Retry-After", "1" } } },
            _ => new HttpResponseMessage(HttpStatusCode.OK),
        });
        h.Transport.Respond("b", _ => Budget(remaining: 0, reset: "11s"));
        (await Post(h, "prime", 100)).Dispose();
        (await Post(h, "prime", 100)).Dispose();
        h.Transport.Hosts.Should().Equal("a", "b");

        var x = Post(h, "x", 5000);
        var fillers = new[] { Post(h, "f1", 3000), Post(h, "f2", 3000) };

        Advance(h, TimeSpan.FromSeconds(2));
        await Clock(h).WhenWaitingAsync(3);
        x.IsCompleted.Should().BeFalse("a's refill at 6 s is within the 8 s left of the bound");
        Advance(h, TimeSpan.FromSeconds(2));
        await Task.WhenAll(fillers).WaitAsync(HangGuard);
        await Clock(h).WhenWaitingAsync(1);
        Advance(h, TimeSpan.FromSeconds(2));

        using var answer = await x.WaitAsync(HangGuard);
        answer.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Requests.Where(r => Caller(r.Headers) == "x").Select(r => r.Host).Should().Equal("a", "a");
    }

    [Fact]
    public async Task With_waits_each_release_starts_a_new_round_of_MaxAttempts_which_may_send_to_a_backend_again()
    {
        using var h = Harness(o =>
        {
            o.MaxQueueWait = TimeSpan.FromSeconds(15);
            o.MaxAttempts = 1;
        });
        var sentX = 0;
        h.Transport.Respond("a", request => Caller(request) switch
        {
            "spend" => Budget(remaining: 0, reset: "10s"),
            "x" when Interlocked.Increment(ref sentX) == 1 => new HttpResponseMessage(HttpStatusCode.TooManyRequests) { Headers = { { "Retry-After", "2" } } },
            _ => new HttpResponseMessage(HttpStatusCode.OK),
        });
        await SpendTheBudgetAsync(h);

        var x = Post(h, "x", 3000);
        Advance(h, Window);
        await Clock(h).WhenWaitingAsync(1);
        x.IsCompleted.Should().BeFalse("throttled in its first round, the caller waits again: 12 s of its 15 s bound");
        Advance(h, TimeSpan.FromSeconds(2));

        (await x.WaitAsync(HangGuard)).StatusCode.Should().Be(HttpStatusCode.OK);
        Callers(h).Should().Equal(["spend", "x", "x"], "one attempt per round; after a wait, a new round may try the same backend");
    }

    [Fact]
    public async Task A_released_waiter_whose_new_round_ends_beyond_the_bound_is_answered_with_the_attempts_of_the_call()
    {
        // Cross-feature check of the "nothing left" branch: a wait released, a new round of one attempt throttled for 2 s,
        // only 1 s of the bound left: not queued again, the exhausted answer at once, reporting the one attempt sent.
        var exhausted = new List<OnBackendsExhaustedArguments>();
        using var h = Harness(o =>
        {
            o.MaxQueueWait = TimeSpan.FromSeconds(11);
            o.MaxAttempts = 1;
            o.OnBackendsExhausted = args => { exhausted.Add(args); return default; };
        });
        h.Transport.Respond("a", request => Caller(request) switch
        {
            "spend" => Budget(remaining: 0, reset: "10s"),
            _ => new HttpResponseMessage(HttpStatusCode.TooManyRequests) { Headers = { { "Retry-After", "2" } } },
        });
        await SpendTheBudgetAsync(h);

        var x = Post(h, "x", 3000);
        x.IsCompleted.Should().BeFalse();
        Advance(h, Window);

        using var response = await x.WaitAsync(HangGuard);
        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(2));
        Callers(h).Should().Equal(["spend", "x"]);
        exhausted.Select(e => e.AttemptCount).Should().Equal([1], "the wait sent nothing; the round after it sent one attempt");
    }

    [Fact]
    public async Task Each_wait_is_recorded_with_its_time_backend_and_outcome()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var meters = services.GetRequiredService<IMeterFactory>();
        using var waits = new MetricCollector<double>(meters, PriorityRoutingMetrics.MeterName, "priority_routing.queue.wait_duration");
        using var h = Harness(o =>
        {
            o.MaxQueueWait = Window;
            o.MeterFactory = meters;
        });
        await SpendTheBudgetAsync(h);
        using var cancellation = new CancellationTokenSource();

        var served = Post(h, "served", 3000);
        Advance(h, TimeSpan.FromSeconds(4));
        var cancelled = Post(h, "cancelled", 3000, cancellation.Token);
        Advance(h, TimeSpan.FromSeconds(1));
        await cancellation.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        Advance(h, TimeSpan.FromSeconds(5));
        (await served).Dispose();

        var measurements = waits.GetMeasurementSnapshot();
        measurements.Select(m => (m.Value, m.Tags["outcome"], m.Tags["backend.name"])).Should().Equal(
            (1.0, "canceled", "a"),
            (10.0, "released", "a"));
    }

    [Fact]
    public async Task Without_MaxQueueWait_an_exhausted_caller_is_answered_at_once_as_before()
    {
        using var h = Harness(o => { });
        await SpendTheBudgetAsync(h);

        var exhausted = Post(h, "first", 3000);

        exhausted.IsCompleted.Should().BeTrue("nothing waits on the clock");
        using var response = await exhausted;
        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.GetValues("retry-after-ms").Single().Should().Be("10002");
    }

    [Fact]
    public async Task Disposing_the_queue_releases_its_waiters_to_try_once_more_and_frees_its_timer()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UnixEpoch);
        var queue = new WaitQueue(time, new BackendBudgets(), Window);
        var reservation = new BudgetReservation(RoutingHarness.Key("a"), 10, time.GetUtcNow() + TimeSpan.FromSeconds(5), "a");

        var waiting = queue.WaitAsync(reservation, TimeSpan.Zero, synchronous: false, continueOnCapturedContext: false, CancellationToken.None);
        queue.Count.Should().Be(1);
        queue.Dispose();

        (await waiting).Outcome.Should().Be(WaitOutcome.Released);
        queue.Count.Should().Be(0);
        (await queue.WaitAsync(reservation, TimeSpan.Zero, synchronous: false, continueOnCapturedContext: false, CancellationToken.None)).Outcome.Should().Be(WaitOutcome.NotQueued);
    }

    [Fact]
    public async Task A_wait_longer_than_what_is_left_of_the_bound_is_not_queued()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UnixEpoch);
        using var queue = new WaitQueue(time, new BackendBudgets(), Window);
        var reservation = new BudgetReservation(RoutingHarness.Key("a"), 10, time.GetUtcNow() + TimeSpan.FromSeconds(4), "a");

        (await queue.WaitAsync(reservation, TimeSpan.FromSeconds(7), synchronous: false, continueOnCapturedContext: false, CancellationToken.None))
            .Outcome.Should().Be(WaitOutcome.NotQueued, "7 s waited and 4 s more exceed the 10 s bound");
        queue.Count.Should().Be(0);
    }

    [Fact]
    public async Task A_released_waiter_whose_wait_fails_to_log_gives_its_held_room_back()
    {
        using var loggers = LoggerFactory.Create(b => b.AddProvider(new ThrowingLoggerProvider(eventId: 12)).SetMinimumLevel(LogLevel.Trace));
        using var h = Harness(o =>
        {
            o.MaxQueueWait = Window;
            o.LoggerFactory = loggers;
        });
        await SpendTheBudgetAsync(h);

        var waiter = Post(h, "waiter", 3000);
        Advance(h, Window);
        await FluentActions.Awaiting(() => waiter.WaitAsync(HangGuard)).Should().ThrowAsync<AggregateException>();

        // The refill is whole again: two requests of 3,751 tokens fit it, and neither waits.
        using var first = await Post(h, "first", 3000).WaitAsync(HangGuard);
        using var second = await Post(h, "second", 3000).WaitAsync(HangGuard);
        second.StatusCode.Should().Be(HttpStatusCode.OK);
        Callers(h).Should().Equal("spend", "first", "second");
    }

    /// <summary>A logging provider whose logger fails on one event: Microsoft.Extensions.Logging then throws.</summary>
    private sealed class ThrowingLoggerProvider(int eventId) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new ThrowingLogger(eventId);

        public void Dispose()
        {
        }

        private sealed class ThrowingLogger(int eventId) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull
                => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId id, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                if (id.Id == eventId)
                {
                    throw new InvalidOperationException("the log failed");
                }
            }
        }
    }

    /// <summary>
    /// Advances the clock off the test runner's synchronization context, as a real timer thread fires. Released waiters
    /// continue on the thread pool, never on the advancing thread: a test awaits them, or
    /// <see cref="LateTimerTimeProvider.WhenWaitingAsync"/> when they wait again.
    /// </summary>
    private static void Advance(RoutingHarness h, TimeSpan delta) => h.AdvanceOffContext(delta);

    private static async Task SpendTheBudgetAsync(RoutingHarness h)
        => (await Post(h, "spend", 100)).Dispose();

    private static string[] Callers(RoutingHarness h)
        => [.. h.Transport.Requests.Where(r => r.Host == "a").Select(r => r.Headers["x-caller"])];

    private static Task<HttpResponseMessage> Post(RoutingHarness h, string caller, int maxTokens, CancellationToken cancellationToken = default)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/") { Content = Chat(maxTokens) };
        request.Headers.Add("x-caller", caller);
        return h.Client.SendAsync(request, cancellationToken);
    }

    private static RoutingHarness Harness(Action<PriorityRoutingStrategyOptions> configure, params PriorityBackend[] backends)
        => Harness(configure, null, backends);

    private static RoutingHarness Harness(Action<PriorityRoutingStrategyOptions> configure, LateTimerTimeProvider? time, params PriorityBackend[] backends)
    {
        var h = new RoutingHarness(
            o =>
            {
                o.Randomizer = _ => 0;
                configure(o);
            },
            null,
            time ?? new LateTimerTimeProvider(RoutingHarness.Start),
            backends.Length == 0 ? [RoutingHarness.Backend("a", 1)] : backends);

        // The first answer spends the budget; after it, each refill serves two 3,751-token requests, whose answers
        // report what is left: 6,249, then 2,498.
        var served = 0;
        h.Transport.Respond("a", _ =>
        {
            var remaining = served == 0 ? 0 : 10_000 - (3751 * (((served - 1) % 2) + 1));
            served++;
            var response = new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent("{}") };
            response.Headers.TryAddWithoutValidation("x-ratelimit-remaining-tokens", remaining.ToString(CultureInfo.InvariantCulture));
            response.Headers.TryAddWithoutValidation("x-ratelimit-limit-tokens", "10000");
            response.Headers.TryAddWithoutValidation("x-ratelimit-reset-tokens", "10s");
            return response;
        });
        return h;
    }

    private static string Caller(HttpRequestMessage request) => request.Headers.GetValues("x-caller").Single();

    private static string Caller(IReadOnlyDictionary<string, string> headers) => headers["x-caller"];

    private static LateTimerTimeProvider Clock(RoutingHarness h) => (LateTimerTimeProvider)h.Time;

    private static HttpResponseMessage Budget(long remaining, string reset)
    {
        var response = new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent("{}") };
        response.Headers.TryAddWithoutValidation("x-ratelimit-remaining-tokens", remaining.ToString(CultureInfo.InvariantCulture));
        response.Headers.TryAddWithoutValidation("x-ratelimit-limit-tokens", "10000");
        response.Headers.TryAddWithoutValidation("x-ratelimit-reset-tokens", reset);
        return response;
    }

    private static StringContent Chat(int maxTokens)
        => new(
            "{\"messages\":[{\"role\":\"user\",\"content\":\"" + new string('x', maxTokens) + "\"}],\"max_tokens\":" + maxTokens.ToString(CultureInfo.InvariantCulture) + "}",
            Encoding.UTF8,
            "application/json");
}
