using System.Net;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Routing;

public class LatencyAwareSelectionTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Draws_over_latency_scaled_weights_within_the_tier()
    {
        var bounds = new List<int>();
        var draw = 0;
        var latency = new LatencyTracker(3);
        var selector = new BackendSelector(
            BackendPool.Route([RoutingHarness.Backend("fast", 1), RoutingHarness.Backend("slow", 1), RoutingHarness.Backend("next", 2)]),
            Selectors.Availability(new InMemoryBackendStateStore()),
            bound =>
            {
                bounds.Add(bound);
                return draw;
            },
            latency);
        latency.Record(0, TimeSpan.FromMilliseconds(100));
        latency.Record(1, TimeSpan.FromMilliseconds(300));

        draw = 999;
        selector.SelectNext(new BackendSet(3), Now)!.Name.Should().Be("fast");
        draw = 1000;
        selector.SelectNext(new BackendSet(3), Now)!.Name.Should().Be("slow");
        bounds.Should().Equal(1111, 1111);
    }

    [Fact]
    public void Never_crosses_tiers_and_a_backend_without_samples_counts_as_fast()
    {
        var latency = new LatencyTracker(3);
        var bounds = new List<int>();
        var selector = new BackendSelector(
            BackendPool.Route([RoutingHarness.Backend("slow", 1), RoutingHarness.Backend("new", 1), RoutingHarness.Backend("fast", 2)]),
            Selectors.Availability(new InMemoryBackendStateStore()),
            bound =>
            {
                bounds.Add(bound);
                return bound - 1;
            },
            latency);
        latency.Record(0, TimeSpan.FromSeconds(5));
        latency.Record(2, TimeSpan.FromMilliseconds(1));
        var tried = new BackendSet(3);

        selector.SelectNext(tried, Now)!.Name.Should().Be("new");
        tried.Add(1);
        selector.SelectNext(tried, Now)!.Name.Should().Be("slow", "the slow backend is the only one left in the best tier");
        bounds.Should().Equal(2000, 1000);
    }

    [Fact]
    public async Task Sends_most_requests_to_the_fast_backend_and_gives_a_recovered_one_its_share_back()
    {
        var slowDelay = TimeSpan.FromMilliseconds(400);
        using var h = new RoutingHarness(
            o =>
            {
                o.SelectionMode = BackendSelectionMode.LatencyAware;
                o.Randomizer = new Random(1234).Next;
            },
            RoutingHarness.Backend("fast", 1),
            RoutingHarness.Backend("slow", 1));
        h.Transport
            .Respond("fast", _ => Answer(h, TimeSpan.FromMilliseconds(100), "fast"))
            .Respond("slow", _ => Answer(h, slowDelay, "slow"));

        var warmUp = await SendMany(h, 20);
        var measured = await SendMany(h, 200);

        measured.Count(host => host == "fast").Should().BeGreaterThanOrEqualTo(180, "(100/400)² = 1/16 of the weight: about 6 % to the slow one");
        measured.Should().Contain("slow", "never starved");
        warmUp.Should().Contain("slow");

        slowDelay = TimeSpan.FromMilliseconds(100);
        var recovery = await SendMany(h, 200);
        var firstShare = Enumerable.Range(0, recovery.Length - 20).First(i => recovery.Skip(i).Take(20).Count(host => host == "slow") >= 7);
        firstShare.Should().BeLessThan(150, "its share comes back within a bounded number of requests");
        recovery.TakeLast(100).Count(host => host == "slow").Should().BeInRange(35, 65);
    }

    private static HttpResponseMessage Answer(RoutingHarness h, TimeSpan delay, string body)
    {
        h.Time.Advance(delay);
        return new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent(body) };
    }

    private static async Task<string[]> SendMany(RoutingHarness h, int count)
    {
        var hosts = new string[count];
        for (var i = 0; i < count; i++)
        {
            using var response = await h.Client.GetAsync("/");
            hosts[i] = await response.Content.ReadAsStringAsync();
        }

        return hosts;
    }
}
