using System.Globalization;
using System.Net;
using System.Text;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Budgets;

/// <summary>
/// Background requests (<see cref="PriorityRoutingHints.Background"/>) through the strategy on a fake clock, meeting
/// the other features: tiers, hints, pinned ids, model fallbacks, waits, synchronous sends.
/// </summary>
/// <remarks>
/// Backend "a" has 10,000 tokens per 10-second window (aligned on the harness's start) and answers with what is left;
/// a request costs its <c>x-cost</c> header. The default headroom, 0.2, keeps 2,000 tokens for foreground requests.
/// </remarks>
public partial class BackgroundRequestTests
{
    private const long Limit = 10_000;
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(10);

    /// <summary>Only against a hang when a test fails: a released waiter continues on the thread pool.</summary>
    private static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Background_work_stops_at_the_headroom_and_foreground_requests_still_get_it()
    {
        using var h = Harness(o => { }, RoutingHarness.Backend("a", 1));
        var a = Windowed(h, "a");

        (await Send(h, "fg", 1000)).StatusCode.Should().Be(HttpStatusCode.OK);
        (await Send(h, "bg", 4000, Background())).StatusCode.Should().Be(HttpStatusCode.OK);
        (await Send(h, "bg", 3000, Background())).StatusCode.Should().Be(HttpStatusCode.OK);
        using var heldBack = await Send(h, "bg", 1, Background());
        using var foreground = await Send(h, "fg", 2000);

        heldBack.StatusCode.Should().Be(HttpStatusCode.TooManyRequests, "2,000 of 10,000 are the foreground's");
        heldBack.Headers.Contains("x-priority-routing-exhausted").Should().BeTrue();
        heldBack.Headers.GetValues("retry-after-ms").Single().Should().Be("10002", "its own refill: the window ends in 10 s (and the answer's usual margin)");
        foreground.StatusCode.Should().Be(HttpStatusCode.OK, "a foreground request ignores the headroom");
        a.Served.Should().Be(4);
        a.Throttled.Should().Be(0, "no request was sent that the backend had to refuse");

        Advance(h, Window + TimeSpan.FromSeconds(9.5));
        using var expected = await Send(h, "bg", 6001, Background());
        expected.StatusCode.Should().Be(HttpStatusCode.TooManyRequests, "the view saw the foreground spend 2,000 within one second (its first request came before any budget was known): background leaves what it can spend at that rate until the reset, in the last half second 2,000");
        (await Send(h, "bg", 6000, Background())).StatusCode.Should().Be(HttpStatusCode.OK, "the refill brings background work back to what the foreground cannot spend before the next");
        a.Served.Should().Be(5);
    }

    [Fact]
    public async Task A_background_caller_sent_back_is_told_when_the_foreground_can_no_longer_spend_the_room_it_needs()
    {
        using var h = Harness(o => { }, RoutingHarness.Backend("a", 1));
        var a = Windowed(h, "a");
        (await Send(h, "first", 1000)).Dispose();
        (await Send(h, "burst", 7000)).Dispose();

        using var sentBack = await Send(h, "bg", 3000, Background());
        sentBack.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        sentBack.Headers.GetValues("retry-after-ms").Single().Should().Be(
            "20002", "the foreground spent 7,000 within one second (its first request came before any budget was known): a whole window at that peak leaves nothing of the next refill, so the one after it");

        Advance(h, TimeSpan.FromMilliseconds(20_002));
        using var late = await Send(h, "bg", 3000, Background());
        late.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        late.Headers.GetValues("retry-after-ms").Single().Should().Be(
            "9000", "a quiet window halved the peak to 3,500: one second of it leaves 3,000 and the headroom, so the window's last second");

        Advance(h, TimeSpan.FromMilliseconds(9000));
        using var comeBack = await Send(h, "bg", 3000, Background());
        comeBack.StatusCode.Should().Be(HttpStatusCode.OK, "it came back when it was told");
        a.Served.Should().Be(3);
        a.Throttled.Should().Be(0);
    }

    [Fact]
    public async Task Background_work_spills_to_a_lower_tier_while_the_hints_it_carries_still_bind()
    {
        using var h = Harness(o => { }, RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2));
        Windowed(h, "a");
        (await Send(h, "fg", 8000)).Dispose();

        using var spilled = await Send(h, "bg", 1000, Background());
        using var onlyA = await Send(h, "bg", 1000, Background(o => o.OnlyBackends = ["a"]));
        using var excludedB = await Send(h, "bg", 1000, Background(o => o.ExcludedBackends = ["b"]));
        using var maxPriority = await Send(h, "bg", 1000, Background(o => o.MaxPriority = 1));
        using var noFailover = await Send(h, "bg", 1000, Background(o => o.NoFailover = true));
        using var foreground = await Send(h, "fg", 2000, new PriorityRoutingHints { OnlyBackends = ["a"] });

        spilled.StatusCode.Should().Be(HttpStatusCode.OK);
        noFailover.StatusCode.Should().Be(HttpStatusCode.OK, "the first backend that admits it is b");
        foreground.StatusCode.Should().Be(HttpStatusCode.OK);
        foreach (var heldBack in new[] { onlyA, excludedB, maxPriority })
        {
            heldBack.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
            heldBack.Headers.GetValues("retry-after-ms").Single().Should().Be("10002");
        }

        h.Transport.Hosts.Should().Equal("a", "b", "b", "a");
    }

    [Fact]
    public async Task A_pinned_background_request_obeys_the_headroom_of_the_backend_holding_its_id()
    {
        using var h = Harness(o => o.Affinity.Store = new InMemoryAffinityStore(), RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 1));
        ((InMemoryAffinityStore)h.Options.Affinity.Store!).Pin("resp_bg_1", "a@http://a", TimeSpan.FromDays(1));
        Windowed(h, "a");
        (await Send(h, "fg", 8000, new PriorityRoutingHints { OnlyBackends = ["a"] })).Dispose();

        using var pinned = await Send(h, "bg", 1000, Background(), FollowUp("resp_bg_1"));
        using var pinnedForeground = await Send(h, "fg", 1000, null, FollowUp("resp_bg_1"));

        pinned.StatusCode.Should().Be(HttpStatusCode.TooManyRequests, "only a can serve the id, and a keeps its headroom");
        pinned.Headers.GetValues("retry-after-ms").Single().Should().Be("10002");
        pinnedForeground.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("a", "a");
    }

    [Fact]
    public async Task A_pinned_background_request_waits_for_the_refill_of_the_backend_holding_its_id()
    {
        using var h = Harness(
            o =>
            {
                o.Affinity.Store = new InMemoryAffinityStore();
                o.MaxQueueWait = Window;
            },
            RoutingHarness.Backend("a", 1),
            RoutingHarness.Backend("b", 1));
        ((InMemoryAffinityStore)h.Options.Affinity.Store!).Pin("resp_bg_1", "a@http://a", TimeSpan.FromDays(1));
        var a = Windowed(h, "a");
        (await Send(h, "fg", 8000, new PriorityRoutingHints { OnlyBackends = ["a"] })).Dispose();

        var pinned = Send(h, "bg", 1000, Background(), FollowUp("resp_bg_1"));
        pinned.IsCompleted.Should().BeFalse("b cannot serve the id: the request waits for a's refill");

        Advance(h, Window);
        (await pinned.WaitAsync(HangGuard)).StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("a", "a");
        a.Throttled.Should().Be(0);
    }

    [Fact]
    public async Task A_background_request_falls_back_to_another_model_while_its_own_keeps_its_headroom()
    {
        var a = RoutingHarness.Backend("a", 1);
        a.Models["gpt-4o"] = "gpt-4o-ptu";
        var b = RoutingHarness.Backend("b", 1);
        b.Models["mini"] = "mini-deploy";
        using var h = Harness(o => o.ModelFallbacks["gpt-4o"] = ["mini"], a, b);
        Windowed(h, "a");
        (await Send(h, "fg", 8000, null, Chat("gpt-4o"))).Dispose();

        using var background = await Send(h, "bg", 1000, Background(), Chat("gpt-4o"));
        using var foreground = await Send(h, "fg", 1000, null, Chat("gpt-4o"));

        background.Headers.GetValues("x-priority-routing-model").Should().Equal("mini");
        foreground.Headers.GetValues("x-priority-routing-model").Should().Equal("gpt-4o");
        h.Transport.Hosts.Should().Equal("a", "b", "a");
    }

    [Fact]
    public async Task A_foreground_burst_later_in_a_window_finds_the_room_background_work_would_have_taken_in_a_lull()
    {
        using var h = Harness(o => { }, RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2));
        var a = Windowed(h, "a");
        (await Send(h, "first", 1000)).Dispose();
        (await Send(h, "burst", 5000)).Dispose();
        Advance(h, Window);

        using var background = await Send(h, "bg", 5000, Background());
        using var burst = await Send(h, "burst again", 7000);

        background.StatusCode.Should().Be(HttpStatusCode.OK);
        burst.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal(["a", "a", "b", "a"], "the lull's background work leaves the 5,000 the foreground spent in the last window, and the headroom, on a");
        a.Throttled.Should().Be(0);
    }

    [Fact]
    public void A_synchronous_background_send_leaves_the_foregrounds_expected_demand_like_an_asynchronous_one()
    {
        using var h = Harness(o => { }, RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2));
        Windowed(h, "a");
        foreach (var (caller, cost) in new[] { ("first", 1000L), ("burst", 5000L) })
        {
            using var foreground = Request(caller, cost, null);
            h.Client.Send(foreground).Dispose();
        }

        Advance(h, Window);
        using var request = Request("bg", 3001, Background());
        using var response = h.Client.Send(request);

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("a", "a", "b");
    }

    [Fact]
    public void A_synchronous_background_send_is_held_back_like_an_asynchronous_one()
    {
        using var h = Harness(o => { }, RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2));
        Windowed(h, "a");
        using (var first = Request("fg", 8000, null))
        {
            h.Client.Send(first).Dispose();
        }

        using var request = Request("bg", 1000, Background());
        using var response = h.Client.Send(request);

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("a", "b");
    }

    [Fact]
    public async Task Foreground_waiters_are_served_from_a_refill_before_a_background_waiter_that_came_first()
    {
        using var h = Harness(o => o.MaxQueueWait = TimeSpan.FromSeconds(25), RoutingHarness.Backend("a", 1));
        var a = Windowed(h, "a");
        (await Send(h, "spend", 10_000)).Dispose();

        var background = Send(h, "bg", 4000, Background());
        var first = Send(h, "fg1", 5000);
        var second = Send(h, "fg2", 5000);
        background.IsCompleted.Should().BeFalse("promised the refill at 10 s, with the headroom left free");
        first.IsCompleted.Should().BeFalse();

        Advance(h, Window);
        (await first.WaitAsync(HangGuard)).StatusCode.Should().Be(HttpStatusCode.OK);
        (await second.WaitAsync(HangGuard)).StatusCode.Should().Be(HttpStatusCode.OK);
        Callers(h).Should().BeEquivalentTo("spend", "fg1", "fg2");

        // Released with them, the background waiter finds the refill taken. It is promised the next one only if it asks
        // before the foreground callers' spends are counted (they continue on the pool): once they are, the foreground
        // is expected to spend the next window too, the first refill with room for background lies beyond the bound,
        // and it is answered at once rather than after a wait in vain. Either way it is never sent.
        if (await WaitsAgainAsync(h, background))
        {
            Advance(h, Window);
        }

        using var sentBack = await background.WaitAsync(HangGuard);
        sentBack.StatusCode.Should().Be(HttpStatusCode.TooManyRequests, "the foreground spent whole windows: background leaves the next one to it and is told to come back");
        Callers(h).Should().BeEquivalentTo("spend", "fg1", "fg2");
        a.Throttled.Should().Be(0);
    }

    [Fact]
    public async Task Background_waiters_leave_the_headroom_of_their_refill_to_foreground_requests()
    {
        using var h = Harness(o => o.MaxQueueWait = Window, RoutingHarness.Backend("a", 1));
        var a = Windowed(h, "a");
        (await Send(h, "spend", 10_000)).Dispose();

        var first = Send(h, "bg1", 5000, Background());
        var second = Send(h, "bg2", 3000, Background());
        using var third = await Send(h, "bg3", 1, Background());

        third.StatusCode.Should().Be(HttpStatusCode.TooManyRequests, "8,000 of the refill are promised, 2,000 are the foreground's");
        third.Headers.GetValues("retry-after-ms").Single().Should().Be("20002", "the next window has room: beyond the bound, it is told so");

        Advance(h, Window);
        (await first.WaitAsync(HangGuard)).StatusCode.Should().Be(HttpStatusCode.OK);
        (await second.WaitAsync(HangGuard)).StatusCode.Should().Be(HttpStatusCode.OK);
        using var foreground = await Send(h, "fg", 2000);
        foreground.StatusCode.Should().Be(HttpStatusCode.OK);
        Callers(h).Should().BeEquivalentTo("spend", "bg1", "bg2", "fg");
        a.Throttled.Should().Be(0);
    }

    [Fact]
    public async Task Background_work_sent_while_classes_were_off_counts_as_foreground_demand_after_a_reload_turns_them_on_and_is_free_again_when_they_are_off()
    {
        // A reload builds a new pipeline over the same store: the view, and the foreground demand it keeps, carry over.
        using var off = Harness(o => o.BackgroundHeadroom = 0, RoutingHarness.Backend("a", 1));
        var a = Windowed(off, "a");
        (await Send(off, "first", 1000)).Dispose();
        (await Send(off, "bg while off", 6000, Background())).StatusCode.Should().Be(HttpStatusCode.OK, "with classes off a background request is a foreground one");
        Advance(off, Window + TimeSpan.FromSeconds(9.5));

        using var on = Reloaded(off, a, headroom: 0.2);
        using var heldBack = await Send(on, "bg", 2001, Background());
        using var admitted = await Send(on, "bg", 2000, Background());

        heldBack.StatusCode.Should().Be(HttpStatusCode.TooManyRequests, "the 6,000 sent within one second while classes were off are the foreground's peak (the first request came before any budget was known): in the last half second 6,000 are expected, 2,000 are the headroom, 2,000 are left");
        heldBack.Headers.GetValues("retry-after-ms").Single().Should().Be("502", "no second at the peak leaves 2,001 before the reset; the refill's window has room for it beyond the headroom and its last second at the peak, halved to 3,000");
        admitted.StatusCode.Should().Be(HttpStatusCode.OK);

        using var offAgain = Reloaded(off, a, headroom: 0);
        (await Send(offAgain, "bg", 8000, Background())).StatusCode.Should().Be(HttpStatusCode.OK, "with classes off again, the 8,000 left are everyone's");
        a.Served.Should().Be(4);
        a.Throttled.Should().Be(0);
    }

    [Fact]
    public async Task Background_work_leaves_the_foreground_demand_free_in_a_declared_quota_too()
    {
        var declared = RoutingHarness.Backend("a", 1);
        declared.TokensPerMinute = 10_000;
        using var h = Harness(o => { }, declared, RoutingHarness.Backend("b", 2));
        (await Send(h, "fg", 6000)).Dispose();
        Advance(h, TimeSpan.FromSeconds(119.5));

        using var tooLarge = await Send(h, "bg", 2001, Background());
        using var fits = await Send(h, "bg", 2000, Background());

        tooLarge.StatusCode.Should().Be(HttpStatusCode.OK);
        fits.StatusCode.Should().Be(HttpStatusCode.OK);
        Callers(h).Should().Equal("fg", "bg", "bg");
        h.Transport.Hosts.Should().Equal(["a", "b", "a"], "in the last half second of the next minute the refilled 10,000 keep the 6,000 the foreground spent within one second of the last, and the 2,000 headroom");
    }

    /// <summary>The pipeline an options reload builds with another <paramref name="headroom"/>: the same store, clock and backend.</summary>
    private static RoutingHarness Reloaded(RoutingHarness before, WindowedBackend backend, double headroom)
    {
        var after = new RoutingHarness(
            o =>
            {
                o.Randomizer = _ => 0;
                o.RequestCost = request => long.Parse(request.Headers.GetValues("x-cost").Single(), CultureInfo.InvariantCulture);
                o.StateStore = before.Store;
                o.BackgroundHeadroom = headroom;
            },
            null,
            before.Time,
            RoutingHarness.Backend("a", 1));
        after.Transport.Respond("a", backend.Answer);
        return after;
    }

    private static PriorityRoutingHints Background(Action<PriorityRoutingHints>? more = null)
    {
        var hints = new PriorityRoutingHints { Background = true };
        more?.Invoke(hints);
        return hints;
    }

    private static Task<HttpResponseMessage> Send(RoutingHarness h, string caller, long cost, PriorityRoutingHints? hints = null, HttpContent? content = null)
        => h.Client.SendAsync(Request(caller, cost, hints, content));

    private static HttpRequestMessage Request(string caller, long cost, PriorityRoutingHints? hints, HttpContent? content = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, content is null ? "/" : "/v1/responses") { Content = content ?? new StringContent("{}", Encoding.UTF8, "application/json") };
        request.Headers.Add("x-caller", caller);
        request.Headers.Add("x-cost", cost.ToString(CultureInfo.InvariantCulture));
        if (hints is not null)
        {
            request.Options.Set(PriorityRoutingRequestOptions.Hints, hints);
        }

        return request;
    }

    private static StringContent FollowUp(string responseId)
        => new("{\"model\":\"gpt-4o\",\"previous_response_id\":\"" + responseId + "\",\"input\":\"hi\"}", Encoding.UTF8, "application/json");

    private static StringContent Chat(string model) => new("{\"model\":\"" + model + "\",\"input\":\"hi\"}", Encoding.UTF8, "application/json");

    private static string[] Callers(RoutingHarness h) => [.. h.Transport.Requests.Select(r => r.Headers["x-caller"])];

    private static void Advance(RoutingHarness h, TimeSpan delta) => h.AdvanceOffContext(delta);

    /// <summary>Waits (within <see cref="HangGuard"/>) until <paramref name="call"/> is answered or waits in the queue again; returns whether it waits.</summary>
    private static async Task<bool> WaitsAgainAsync(RoutingHarness h, Task call)
    {
        var queue = ((LateTimerTimeProvider)h.Time).Queue;
        var guard = System.Diagnostics.Stopwatch.StartNew();
        while (!call.IsCompleted && queue.Count == 0)
        {
            guard.Elapsed.Should().BeLessThan(HangGuard, "the call was expected to be answered or to wait again");
            await Task.Delay(10);
        }

        return !call.IsCompleted;
    }

    /// <summary>Waits (within <see cref="HangGuard"/>) until <paramref name="count"/> requests wait in the pipeline's queue.</summary>
    private static async Task WaitersAsync(RoutingHarness h, int count)
    {
        var queue = ((LateTimerTimeProvider)h.Time).Queue;
        var guard = System.Diagnostics.Stopwatch.StartNew();
        while (queue.Count != count)
        {
            guard.Elapsed.Should().BeLessThan(HangGuard, "{0} waiter(s) were expected in the queue", count);
            await Task.Delay(10);
        }
    }

    private static RoutingHarness Harness(Action<PriorityRoutingStrategyOptions> configure, params PriorityBackend[] backends)
        => new(
            o =>
            {
                o.Randomizer = _ => 0;
                o.RequestCost = request => long.Parse(request.Headers.GetValues("x-cost").Single(), CultureInfo.InvariantCulture);
                configure(o);
            },
            null,
            new LateTimerTimeProvider(RoutingHarness.Start),
            backends);

    private static WindowedBackend Windowed(RoutingHarness h, string host)
    {
        var backend = new WindowedBackend(h.Time);
        h.Transport.Respond(host, backend.Answer);
        return backend;
    }

    /// <summary>A backend that admits by tokens per window, as Azure OpenAI does, and reports what is left.</summary>
    private sealed class WindowedBackend(TimeProvider time)
    {
        private long _window = -1;
        private long _spent;

        public int Served { get; private set; }

        public int Throttled { get; private set; }

        public HttpResponseMessage Answer(HttpRequestMessage request)
        {
            var cost = long.Parse(request.Headers.GetValues("x-cost").Single(), CultureInfo.InvariantCulture);
            var elapsed = time.GetUtcNow() - RoutingHarness.Start;
            var window = elapsed.Ticks / Window.Ticks;
            if (window != _window)
            {
                (_window, _spent) = (window, 0);
            }

            var resetMs = (long)(Window - TimeSpan.FromTicks(elapsed.Ticks % Window.Ticks)).TotalMilliseconds;
            if (_spent + cost > Limit)
            {
                Throttled++;
                var refused = new HttpResponseMessage(HttpStatusCode.TooManyRequests);
                refused.Headers.TryAddWithoutValidation("retry-after-ms", resetMs.ToString(CultureInfo.InvariantCulture));
                return refused;
            }

            _spent += cost;
            Served++;
            var response = new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent("{\"id\":\"resp_" + Served.ToString(CultureInfo.InvariantCulture) + "\"}", Encoding.UTF8, "application/json") };
            response.Headers.TryAddWithoutValidation("x-ratelimit-remaining-tokens", (Limit - _spent).ToString(CultureInfo.InvariantCulture));
            response.Headers.TryAddWithoutValidation("x-ratelimit-limit-tokens", Limit.ToString(CultureInfo.InvariantCulture));
            response.Headers.TryAddWithoutValidation("x-ratelimit-reset-tokens", resetMs.ToString(CultureInfo.InvariantCulture) + "ms");
            return response;
        }
    }
}
