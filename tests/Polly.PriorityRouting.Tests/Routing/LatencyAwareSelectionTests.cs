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
        Record(latency, 0, TimeSpan.FromMilliseconds(100));
        Record(latency, 1, TimeSpan.FromMilliseconds(300));

        draw = 999;
        selector.SelectNext(new BackendSet(3), Now)!.Name.Should().Be("fast");
        draw = 1000;
        selector.SelectNext(new BackendSet(3), Now)!.Name.Should().Be("slow");
        bounds.Should().Equal([1173, 1173], "1000 + 1000 × (1.25 × 100 / 300)²");
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
        Record(latency, 0, TimeSpan.FromSeconds(5));
        Record(latency, 2, TimeSpan.FromMilliseconds(1));
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

    [Fact]
    public async Task A_first_answer_slowed_by_connection_set_up_does_not_send_the_backends_traffic_away()
    {
        // Both backends answer in 100 ms; a's first answer also pays 400 ms of connection set-up (TCP, TLS).
        using var h = TwoBackends((host, answer) => host == "a" && answer == 1 ? 500 : 100);

        var hosts = await SendMany(h, 60);

        // Before: a took 1 of 60 (its set-up sample kept it at the floor, a twentieth, and it was rarely measured again).
        // After: 26 of 60.
        hosts.Count(host => host == "a").Should().BeInRange(24, 36, "equally fast backends split near their equal weights");
    }

    [Fact]
    public async Task One_slow_answer_does_not_send_traffic_to_a_backend_forty_times_slower()
    {
        // a answers in 5 ms, b in 200 ms; after warm-up, one answer of a takes 970 ms.
        var outlier = false;
        using var h = TwoBackends((host, _) =>
        {
            if (host == "b")
            {
                return 200;
            }

            var delay = outlier ? 970 : 5;
            outlier = false;
            return delay;
        });

        await SendMany(h, 40);
        outlier = true;
        while (outlier)
        {
            await SendMany(h, 1);
        }

        var next = await SendMany(h, 16);

        // Before: b took 16 of the next 16 (a's average moved half-way to 970 ms, far above b's 200 ms). After: 0.
        next.Count(host => host == "b").Should().BeLessThanOrEqualTo(1, "one outlier is not a trend");
    }

    [Fact]
    public async Task Two_equally_fast_backends_with_jitter_split_near_their_weights()
    {
        // Both answer in 2 ms ± 1 ms (loopback-like jitter: large relative to the latency).
        var jitter = new Random(7);
        using var h = TwoBackends((_, _) => jitter.Next(1, 4));

        var hosts = await SendMany(h, 200);

        // Before: a took 121 of 200. After: 104.
        hosts.Count(host => host == "a").Should().BeInRange(85, 115);
    }

    /// <summary>Two backends in one tier; each answer takes <paramref name="delayMilliseconds"/>(host, its n-th answer from 1).</summary>
    private static RoutingHarness TwoBackends(Func<string, int, int> delayMilliseconds)
    {
        var h = new RoutingHarness(
            o =>
            {
                o.SelectionMode = BackendSelectionMode.LatencyAware;
                o.Randomizer = new Random(1234).Next;
            },
            RoutingHarness.Backend("a", 1),
            RoutingHarness.Backend("b", 1));
        var served = new Dictionary<string, int>();
        foreach (var host in new[] { "a", "b" })
        {
            h.Transport.Respond(host, _ =>
            {
                served[host] = served.GetValueOrDefault(host) + 1;
                return Answer(h, TimeSpan.FromMilliseconds(delayMilliseconds(host, served[host])), host);
            });
        }

        return h;
    }

    /// <summary>Two samples: the first, which pays the connection's set-up, is discarded.</summary>
    private static void Record(LatencyTracker latency, int index, TimeSpan timeToFirstByte)
    {
        latency.Record(index, timeToFirstByte);
        latency.Record(index, timeToFirstByte);
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
