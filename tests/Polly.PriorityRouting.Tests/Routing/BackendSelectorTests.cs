using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Routing;

public class BackendSelectorTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);

    private readonly InMemoryBackendStateStore _store = new();

    [Fact]
    public void Takes_every_backend_of_a_tier_before_the_next_tier()
    {
        var selector = Selector(Random.Shared.Next, ("p2", 2, 1), ("p1a", 1, 1), ("p3", 3, 1), ("p1b", 1, 5));
        var tried = new BackendSet(selector.Backends.Count);
        var order = new List<string>();

        while (selector.SelectNext(tried, Now) is { } backend)
        {
            order.Add(backend.Name);
            tried.Add(backend.Index);
        }

        order.Should().HaveCount(4);
        order.Take(2).Should().BeEquivalentTo("p1a", "p1b");
        order.Skip(2).Should().Equal("p2", "p3");
    }

    [Fact]
    public async Task Skips_unavailable_backends_until_their_deadline()
    {
        var selector = Selector(_ => 0, ("a", 1, 1), ("b", 1, 1), ("c", 2, 1));
        await _store.MarkUnavailableAsync(RoutingHarness.Key("a"), new(Now.AddSeconds(5), BackendUnavailableReason.Throttled), Now, default);
        await _store.MarkUnavailableAsync(RoutingHarness.Key("b"), new(Now.AddSeconds(3), BackendUnavailableReason.Throttled), Now, default);

        selector.SelectNext(new BackendSet(3), Now)!.Name.Should().Be("c");
        selector.SelectNext(new BackendSet(3), Now.AddSeconds(3))!.Name.Should().Be("b");
        selector.SelectNext(new BackendSet(3), Now.AddSeconds(5))!.Name.Should().Be("a");
    }

    [Fact]
    public async Task Returns_null_when_nothing_is_left()
    {
        var selector = Selector(_ => 0, ("a", 1, 1), ("b", 2, 1));
        await _store.MarkUnavailableAsync(RoutingHarness.Key("a"), new(Now.AddSeconds(5), BackendUnavailableReason.Throttled), Now, default);
        var tried = new BackendSet(2);
        tried.Add(1);

        selector.SelectNext(tried, Now).Should().BeNull();
    }

    [Fact]
    public void Follows_the_weights_within_a_tier()
    {
        var selector = Selector(new Random(20261206).Next, ("light", 1, 1), ("heavy", 1, 3), ("fallback", 2, 1000));
        const int Draws = 40_000;
        var heavy = 0;
        for (var i = 0; i < Draws; i++)
        {
            var name = selector.SelectNext(new BackendSet(3), Now)!.Name;
            name.Should().NotBe("fallback");
            heavy += name == "heavy" ? 1 : 0;
        }

        // Expected 0.75; the standard deviation of the share is about 0.002, so 0.015 is over seven sigmas (and the seed
        // makes the run the same every time).
        ((double)heavy / Draws).Should().BeApproximately(0.75, 0.015);
    }

    [Fact]
    public void Weighted_pick_maps_the_random_draw_onto_cumulative_weights()
    {
        var draws = new Queue<int>([0, 1, 3, 4, 5]);
        var bounds = new List<int>();
        var selector = Selector(bound => { bounds.Add(bound); return draws.Dequeue(); }, ("a", 1, 1), ("b", 1, 3), ("c", 1, 2));

        var picks = Enumerable.Range(0, 5).Select(_ => selector.SelectNext(new BackendSet(3), Now)!.Name).ToArray();

        picks.Should().Equal("a", "b", "b", "c", "c");
        bounds.Should().AllBeEquivalentTo(6);
    }

    [Fact]
    public void Tiers_wider_than_64_follow_the_weights_too()
    {
        // 100 backends in one tier, weights 1..4: reservoir sampling, checked per weight class over 200,000 draws.
        var random = new Random(20261124);
        var backends = Enumerable.Range(0, 100).Select(i => ($"w{i:000}", 1, 1 + (i % 4))).ToArray();
        var selector = Selector(random.Next, backends);
        var perWeight = new int[5];
        const int Draws = 200_000;
        for (var i = 0; i < Draws; i++)
        {
            perWeight[selector.SelectNext(new BackendSet(100), Now)!.Weight]++;
        }

        // Each class holds 25 backends: its share is weight × 25 / 250. Five sigma of a binomial share is under 0.006.
        for (var weight = 1; weight <= 4; weight++)
        {
            ((double)perWeight[weight] / Draws).Should().BeApproximately(weight * 25 / 250.0, 0.006, $"weight {weight}");
        }
    }

    [Fact]
    public void Wide_tiers_pick_the_first_configured_candidate_when_every_draw_is_zero()
    {
        var backends = Enumerable.Range(0, 70).Select(i => ($"b{i:000}", 1, 1)).ToArray();
        var selector = Selector(_ => 0, backends);

        selector.SelectNext(new BackendSet(70), Now)!.Name.Should().Be("b000");
    }

    [Fact]
    public async Task Exhaustion_reports_the_soonest_deadline_and_whether_any_is_a_throttle()
    {
        var selector = Selector(_ => 0, ("a", 1, 1), ("b", 2, 1));
        await _store.MarkUnavailableAsync(RoutingHarness.Key("a"), new(Now.AddSeconds(8), BackendUnavailableReason.Throttled), Now, default);
        await _store.MarkUnavailableAsync(RoutingHarness.Key("b"), new(Now.AddSeconds(3), BackendUnavailableReason.ServerError), Now, default);

        Selectors.Availability(_store).GetExhaustion(selector.Backends, Now, null).Should().Be((TimeSpan.FromSeconds(3), true));
        Selectors.Availability(_store).GetExhaustion(selector.Backends, Now.AddSeconds(4), null).Should().Be((TimeSpan.Zero, true));
        Selectors.Availability(_store).GetExhaustion(selector.Backends, Now.AddSeconds(9), null).Should().Be((TimeSpan.Zero, false));
    }

    [Fact]
    public void Handles_more_than_64_backends()
    {
        var backends = Enumerable.Range(0, 100).Select(i => ($"b{i:000}", 1 + (i / 10), 1)).ToArray();
        var selector = Selector(Random.Shared.Next, backends);
        var tried = new BackendSet(selector.Backends.Count);
        var seen = new List<RoutedBackend>();

        while (selector.SelectNext(tried, Now) is { } backend)
        {
            seen.Add(backend);
            tried.Add(backend.Index);
        }

        seen.Select(b => b.Name).Should().OnlyHaveUniqueItems().And.HaveCount(100);
        seen.Select(b => b.Priority).Should().BeInAscendingOrder();
    }

    [Fact]
    public async Task Choosing_allocates_nothing()
    {
        var selector = Selector(Random.Shared.Next, ("a", 1, 1), ("b", 1, 2), ("c", 2, 1));
        await _store.MarkUnavailableAsync(RoutingHarness.Key("a"), new(Now.AddSeconds(8), BackendUnavailableReason.Throttled), Now, default);
        selector.SelectNext(new BackendSet(3), Now);

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1_000; i++)
        {
            var tried = new BackendSet(3);
            tried.Add(selector.SelectNext(tried, Now)!.Index);
            selector.SelectNext(tried, Now);
        }

        (GC.GetAllocatedBytesForCurrentThread() - before).Should().Be(0);
    }

    private BackendSelector Selector(Func<int, int> randomizer, params (string Name, int Priority, int Weight)[] backends)
        => Selectors.Create(
            [.. backends.Select(b => new PriorityBackend
            {
                Name = b.Name,
                BaseAddress = new Uri($"http://{b.Name}/"),
                Priority = b.Priority,
                Weight = b.Weight,
            })],
            _store,
            randomizer);
}
