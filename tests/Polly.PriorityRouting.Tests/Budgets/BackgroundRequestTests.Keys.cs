using System.Net;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Budgets;

/// <summary>
/// The foreground's expected demand is kept per budget key (backend, and partition or deployment): a foreground burst
/// on one key never holds background work off another, whichever hint or model map sends each request where it goes.
/// </summary>
/// <remarks>
/// Each test lets the foreground spend 6,000 of a key's 10,000 in one window: 1,000 before the budget was known, then a
/// burst of 5,000 that the view counts as the foreground's demand, so that the key keeps 5,000 for it in the next window;
/// then a background request of 7,000 — which fits the other key's 10,000 less its 2,000 headroom, but not with 5,000
/// kept as well — goes to the other key.
/// </remarks>
public partial class BackgroundRequestTests
{
    private const long OtherKeysBackgroundCost = 7000;

    [Fact]
    public async Task A_foreground_burst_on_one_backend_never_holds_background_work_sent_only_to_another_off_it()
    {
        using var h = Harness(o => { }, RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 1));
        var (a, b) = (Windowed(h, "a"), Windowed(h, "b"));
        await ForegroundBurstOnAAsync(h, new PriorityRoutingHints { OnlyBackends = ["a"] });
        await LearnBsBudgetInBackgroundAsync(h, Background(o => o.OnlyBackends = ["b"]));
        Advance(h, Window);

        using var background = await Send(h, "bg", OtherKeysBackgroundCost, Background(o => o.OnlyBackends = ["b"]));
        using var heldOnA = await Send(h, "bg", 3001, Background(o => o.OnlyBackends = ["a"]));

        background.StatusCode.Should().Be(HttpStatusCode.OK, "b's foreground expects nothing: its 10,000 less the 2,000 headroom are background's");
        heldOnA.StatusCode.Should().Be(HttpStatusCode.TooManyRequests, "a keeps the 5,000 its foreground burst spent and the headroom: 3,000 are left");
        h.Transport.Hosts.Should().Equal("a", "a", "b", "b");
        (a.Throttled, b.Throttled).Should().Be((0, 0));
    }

    [Fact]
    public async Task A_foreground_burst_on_a_better_tier_never_holds_off_background_work_kept_to_a_tier_by_MaxPriority()
    {
        using var h = Harness(o => { }, RoutingHarness.Backend("a", 2), RoutingHarness.Backend("b", 1));
        Windowed(h, "a");
        var b = Windowed(h, "b");
        await ForegroundBurstOnAAsync(h, new PriorityRoutingHints { OnlyBackends = ["a"] });
        await LearnBsBudgetInBackgroundAsync(h, Background(o => o.MaxPriority = 1));
        Advance(h, Window);

        using var background = await Send(h, "bg", OtherKeysBackgroundCost, Background(o => o.MaxPriority = 1));
        using var heldOnA = await Send(h, "bg", 3001, Background(o => o.OnlyBackends = ["a"]));

        background.StatusCode.Should().Be(HttpStatusCode.OK, "b's foreground expects nothing");
        heldOnA.StatusCode.Should().Be(HttpStatusCode.TooManyRequests, "a keeps the 5,000 its foreground burst spent and the headroom");
        h.Transport.Hosts.Should().Equal("a", "a", "b", "b");
        b.Throttled.Should().Be(0);
    }

    [Fact]
    public async Task A_foreground_burst_on_one_backend_never_holds_off_a_background_follow_up_pinned_to_another()
    {
        using var h = Harness(o => o.Affinity.Store = new InMemoryAffinityStore(), RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 1));
        ((InMemoryAffinityStore)h.Options.Affinity.Store!).Pin("resp_on_b", "b@http://b", TimeSpan.FromDays(1));
        Windowed(h, "a");
        Windowed(h, "b");
        await ForegroundBurstOnAAsync(h, new PriorityRoutingHints { OnlyBackends = ["a"] });
        await LearnBsBudgetInBackgroundAsync(h, Background(o => o.OnlyBackends = ["b"]));
        Advance(h, Window);

        using var pinned = await Send(h, "bg", OtherKeysBackgroundCost, Background(), FollowUp("resp_on_b"));

        pinned.StatusCode.Should().Be(HttpStatusCode.OK, "only b holds the id, and b's foreground expects nothing");
        h.Transport.Hosts.Should().Equal("a", "a", "b", "b");
    }

    [Fact]
    public async Task A_foreground_burst_on_one_deployment_never_holds_off_background_work_for_another_deployment_of_the_same_backend()
    {
        var a = RoutingHarness.Backend("a", 1);
        a.Models["gpt-4o"] = "gpt-4o-ptu";
        a.Models["mini"] = "mini-ptu";
        using var h = Harness(o => { }, a);
        var (large, small) = (new WindowedBackend(h.Time), new WindowedBackend(h.Time));
        h.Transport.Respond("a", request => (h.Transport.Requests.Last().Body!.Contains("mini-ptu", StringComparison.Ordinal) ? small : large).Answer(request));
        (await Send(h, "first", 1000, null, Chat("gpt-4o"))).Dispose();
        (await Send(h, "burst", 5000, null, Chat("gpt-4o"))).Dispose();
        (await Send(h, "bg", 1000, Background(), Chat("mini"))).Dispose();
        Advance(h, Window);

        using var background = await Send(h, "bg", OtherKeysBackgroundCost, Background(), Chat("mini"));
        using var heldOnLarge = await Send(h, "bg", 3001, Background(), Chat("gpt-4o"));

        background.StatusCode.Should().Be(HttpStatusCode.OK, "the budget of mini-ptu is its own: its foreground expects nothing");
        heldOnLarge.StatusCode.Should().Be(HttpStatusCode.TooManyRequests, "gpt-4o-ptu keeps the 5,000 its foreground burst spent and the headroom");
        (large.Served, small.Served).Should().Be((2, 2));
        (large.Throttled, small.Throttled).Should().Be((0, 0));
    }

    [Fact]
    public async Task A_foreground_burst_in_one_throttle_partition_never_holds_off_background_work_in_another()
    {
        using var h = Harness(
            o => o.ThrottlePartitionKey = request => request.Headers.GetValues("x-tenant").Single(),
            RoutingHarness.Backend("a", 1));
        var (first, second) = (new WindowedBackend(h.Time), new WindowedBackend(h.Time));
        h.Transport.Respond("a", request => (request.Headers.GetValues("x-tenant").Single() == "t2" ? second : first).Answer(request));
        (await SendIn(h, "t1", "first", 1000, null)).Dispose();
        (await SendIn(h, "t1", "burst", 5000, null)).Dispose();
        (await SendIn(h, "t2", "bg", 1000, Background())).Dispose();
        Advance(h, Window);

        using var background = await SendIn(h, "t2", "bg", OtherKeysBackgroundCost, Background());
        using var heldInFirst = await SendIn(h, "t1", "bg", 3001, Background());

        background.StatusCode.Should().Be(HttpStatusCode.OK, "partition t2's foreground expects nothing");
        heldInFirst.StatusCode.Should().Be(HttpStatusCode.TooManyRequests, "partition t1 keeps the 5,000 its foreground burst spent and the headroom");
        (first.Served, second.Served).Should().Be((2, 2));
    }

    private static Task<HttpResponseMessage> SendIn(RoutingHarness h, string partition, string caller, long cost, PriorityRoutingHints? hints)
    {
        var request = Request(caller, cost, hints);
        request.Headers.Add("x-tenant", partition);
        return h.Client.SendAsync(request);
    }

    /// <summary>The foreground spends 6,000 of a's window: 1,000 before a's budget is known, then a burst of 5,000.</summary>
    private static async Task ForegroundBurstOnAAsync(RoutingHarness h, PriorityRoutingHints hints)
    {
        (await Send(h, "first", 1000, hints)).StatusCode.Should().Be(HttpStatusCode.OK);
        (await Send(h, "burst", 5000, hints)).StatusCode.Should().Be(HttpStatusCode.OK);
    }

    /// <summary>b reports its budget to a background request, which adds nothing to b's foreground demand.</summary>
    private static async Task LearnBsBudgetInBackgroundAsync(RoutingHarness h, PriorityRoutingHints hints)
        => (await Send(h, "bg", 1000, hints)).StatusCode.Should().Be(HttpStatusCode.OK);
}
