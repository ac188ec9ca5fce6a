using System.Net;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Routing;

/// <summary>
/// A deadline read from the store is honoured at most this pipeline's longest cooldown from when the mark was made —
/// not from each read, which would hold a backend out as long as a peer's far deadline keeps being read.
/// </summary>
public sealed class BackendAvailabilityTests
{
    private static readonly TimeSpan LongestCooldown = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan OneYear = TimeSpan.FromDays(365);

    [Fact]
    public async Task A_peers_one_year_mark_holds_the_backend_out_for_this_pipelines_longest_cooldown_from_when_it_was_made()
    {
        using var h = Harness();
        var marked = h.Time.GetUtcNow();
        h.Store.Mark(RoutingHarness.Key("a"), new BackendUnavailability(marked + OneYear, BackendUnavailableReason.Throttled, marked), marked);

        (await BackendOf(h)).Should().Be("b");
        h.Time.Advance(LongestCooldown - TimeSpan.FromMilliseconds(1));
        (await BackendOf(h)).Should().Be("b", "the mark is 999 ms old");
        h.Time.Advance(TimeSpan.FromMilliseconds(1));
        (await BackendOf(h)).Should().Be("a", "a second after the mark was made, this pipeline's longest cooldown is over");
    }

    [Fact]
    public async Task A_peer_with_a_larger_MaxCooldown_holds_the_backend_out_for_this_pipelines_longest_cooldown()
    {
        using var peer = Harness(o =>
        {
            o.MaxCooldown = TimeSpan.FromHours(1);
            o.DefaultCooldown = TimeSpan.FromSeconds(10);
        });
        peer.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "3600"));
        using var h = Harness(o => o.StateStore = peer.Store);

        (await BackendOf(peer)).Should().Be("b", "the peer was throttled for an hour");
        (await BackendOf(h)).Should().Be("b");
        h.Time.Advance(LongestCooldown);

        (await BackendOf(h)).Should().Be("a");
        peer.StateOf("a")!.Value.Until.Should().Be(peer.Time.GetUtcNow() + TimeSpan.FromHours(1), "the peer's own mark is kept as it asked");
    }

    [Fact]
    public async Task A_failure_under_a_peers_far_mark_is_clamped_from_its_own_time_not_from_the_older_mark()
    {
        using var h = Harness();
        var start = h.Time.GetUtcNow();
        h.Store.Mark(RoutingHarness.Key("a"), new BackendUnavailability(start + OneYear, BackendUnavailableReason.Throttled, start), start);
        h.Time.Advance(TimeSpan.FromSeconds(5));
        h.Transport.Respond("a", HttpStatusCode.ServiceUnavailable);

        (await BackendOf(h)).Should().Be("b", "a is back in rotation, fails, and the request fails over");
        h.Transport.Hosts.Should().Equal("a", "b");
        h.StateOf("a")!.Value.MarkedAt.Should().Be(h.Time.GetUtcNow(), "the store keeps the later marking time with the later deadline");
        h.Time.Advance(LongestCooldown - TimeSpan.FromMilliseconds(1));
        (await BackendOf(h)).Should().Be("b", "the fresh failure holds a for this pipeline's longest cooldown");
        h.Time.Advance(TimeSpan.FromMilliseconds(1));
        h.Transport.Respond("a", HttpStatusCode.OK);
        (await BackendOf(h)).Should().Be("a");
    }

    [Fact]
    public void A_mark_from_a_store_that_does_not_know_when_it_was_made_is_clamped_from_the_read()
    {
        var store = new InMemoryBackendStateStore();
        var availability = new BackendAvailability(store, null, LongestCooldown);
        var now = new DateTimeOffset(2026, 12, 6, 12, 0, 0, TimeSpan.Zero);
        var key = new BackendStateKey("a@http://a");
        store.Mark(key, new BackendUnavailability(now + OneYear, BackendUnavailableReason.ServerError), now);

        availability.TryGetActive(key, now + TimeSpan.FromDays(30), out var read).Should().BeTrue();

        read.Until.Should().Be(now + TimeSpan.FromDays(30) + LongestCooldown);
        read.Reason.Should().Be(BackendUnavailableReason.ServerError);
    }

    private static RoutingHarness Harness(Action<PriorityRoutingStrategyOptions>? configure = null)
    {
        var h = new RoutingHarness(
            o =>
            {
                o.MaxCooldown = LongestCooldown;
                o.DefaultCooldown = LongestCooldown;
                o.OutlierEjection.Enabled = false;
                configure?.Invoke(o);
            },
            RoutingHarness.Backend("a", 1),
            RoutingHarness.Backend("b", 2));
        h.Transport.Respond("a", HttpStatusCode.OK).Respond("b", HttpStatusCode.OK);
        return h;
    }

    private static async Task<string> BackendOf(RoutingHarness h)
    {
        using var response = await h.Client.GetAsync("/chat");
        return await response.Content.ReadAsStringAsync();
    }
}
