using System.Diagnostics.Metrics;
using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
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

    [Fact]
    public async Task Waiting_callers_are_served_in_arrival_order_when_the_budget_refills()
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
        Callers(h).Should().Equal("spend", "first", "second");
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
        Callers(h).Should().Equal("spend", "first", "newcomer");

        Advance(h, Window);
        (await late).StatusCode.Should().Be(HttpStatusCode.OK);
        Callers(h).Should().Equal("spend", "first", "newcomer", "late");
    }

    [Fact]
    public void A_released_waiters_room_is_held_from_newcomers_until_it_is_admitted()
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

        budgets.Hold(key, 8000);
        budgets.CanAdmit(key, 3000, refill).Should().BeFalse("8,000 of the refilled 10,000 are a waiter's");
        budgets.CanAdmit(key, 2000, refill).Should().BeTrue();
        budgets.TimeUntilAdmitted(key, 3000, refill).Should().BePositive();

        budgets.Unhold(key, 8000);
        budgets.CanAdmit(key, 3000, refill).Should().BeTrue();
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
        Callers(h).Should().Equal("spend", "first", "second");
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
        Callers(h).Should().Equal("spend", "second", "third");
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

        var waiting = queue.WaitAsync(reservation, TimeSpan.Zero, continueOnCapturedContext: false, CancellationToken.None);
        queue.Count.Should().Be(1);
        queue.Dispose();

        (await waiting).Should().Be(WaitOutcome.Released);
        queue.Count.Should().Be(0);
        (await queue.WaitAsync(reservation, TimeSpan.Zero, continueOnCapturedContext: false, CancellationToken.None)).Should().Be(WaitOutcome.NotQueued);
    }

    [Fact]
    public async Task A_wait_longer_than_what_is_left_of_the_bound_is_not_queued()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UnixEpoch);
        using var queue = new WaitQueue(time, new BackendBudgets(), Window);
        var reservation = new BudgetReservation(RoutingHarness.Key("a"), 10, time.GetUtcNow() + TimeSpan.FromSeconds(4), "a");

        (await queue.WaitAsync(reservation, TimeSpan.FromSeconds(7), continueOnCapturedContext: false, CancellationToken.None))
            .Should().Be(WaitOutcome.NotQueued, "7 s waited and 4 s more exceed the 10 s bound");
        queue.Count.Should().Be(0);
    }

    /// <summary>
    /// Advances the clock off the test runner's synchronization context, as a real timer thread fires: released waiters
    /// then continue inline, one after the other, and the order the tests assert is the order the queue released them
    /// in (on a thread with a context, the runtime would queue each continuation to the thread pool instead).
    /// </summary>
    private static void Advance(RoutingHarness h, TimeSpan delta)
    {
        var context = SynchronizationContext.Current;
        SynchronizationContext.SetSynchronizationContext(null);
        try
        {
            h.Time.Advance(delta);
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(context);
        }
    }

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
    {
        var h = new RoutingHarness(
            o =>
            {
                o.Randomizer = _ => 0;
                configure(o);
            },
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

    private static StringContent Chat(int maxTokens)
        => new(
            "{\"messages\":[{\"role\":\"user\",\"content\":\"" + new string('x', maxTokens) + "\"}],\"max_tokens\":" + maxTokens.ToString(CultureInfo.InvariantCulture) + "}",
            Encoding.UTF8,
            "application/json");
}
