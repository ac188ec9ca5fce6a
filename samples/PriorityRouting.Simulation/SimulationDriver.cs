using System.Net;
using Microsoft.Extensions.Time.Testing;
using PriorityRouting.Simulation.Routers;

namespace PriorityRouting.Simulation;

/// <summary>
/// Runs every router at every offered load and number of replicas, on a virtual clock, one request at a time.
/// </summary>
/// <remarks>
/// The caller's retry is played by the driver, the same for every router: a 429/503 answer (or an exception) is
/// re-issued after the <c>retry-after-ms</c> / <c>Retry-After</c> it carried (2 s without one, the standard retry's
/// first delay), at most <see cref="SimulationSettings.ClientRetries"/> times. Polly's own retry would wait on the
/// virtual clock inside the call; the driver waits between waves instead, so that each call completes synchronously
/// and the run is deterministic.
/// </remarks>
public static class SimulationDriver
{
    public const string RequestPath = "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21";

    public static readonly Uri PlaceholderAddress = new("http://placeholder/");

    private static readonly TimeSpan RetryDelayWithoutHeader = TimeSpan.FromSeconds(2);
    private static readonly DateTimeOffset VirtualStart = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    internal static IReadOnlyList<IRouterUnderTest> Routers { get; } =
    [
        new SingleEndpointRouter(),
        new HedgingOrderedGroupsRouter(),
        new ReplicaLocalPriorityRouter(),
        new PriorityRoutingRouter(sharedStore: false),
        new PriorityRoutingRouter(sharedStore: true),
    ];

    public static async Task<IReadOnlyList<RunResult>> RunAllAsync(SimulationSettings settings, Action<RunResult>? onResult = null)
    {
        var results = new List<RunResult>();
        foreach (var replicas in settings.ReplicaCounts)
        {
            foreach (var router in Routers)
            {
                foreach (var load in settings.LoadFactors)
                {
                    var result = await RunAsync(settings, router, load, replicas).ConfigureAwait(false);
                    onResult?.Invoke(result);
                    results.Add(result);
                }
            }
        }

        return results;
    }

    internal static async Task<RunResult> RunAsync(SimulationSettings settings, IRouterUnderTest router, double loadFactor, int replicaCount)
    {
        var time = new FakeTimeProvider(VirtualStart);
        var backends = CreateBackends(settings, time.GetUtcNow());
        var measureFrom = VirtualStart + settings.Warmup;
        var end = measureFrom + settings.Measured;
        var environment = new RouterEnvironment(settings, new InMemoryBackendTransport(backends, time, measureFrom), time);
        var replicas = router.CreateReplicas(environment, replicaCount);
        var address = router.RequestAddress(settings);

        var counts = new ClientCounts();
        var retries = new PriorityQueue<PendingRetry, (DateTimeOffset Due, long Sequence)>();
        long retrySequence = 0;
        var issued = new long[replicaCount];
        var ratePerReplica = loadFactor * settings.AggregateCapacity / replicaCount;

        for (var now = time.GetUtcNow(); now < end; time.Advance(settings.Step), now = time.GetUtcNow())
        {
            var measured = now >= measureFrom;

            while (retries.TryPeek(out var due, out var priority) && priority.Due <= now)
            {
                retries.Dequeue();
                await SendAsync(due.Replica, due.RetriesDone).ConfigureAwait(false);
            }

            // New requests: each replica's share of the offered load, interleaved so that no replica sees the others'
            // answers before sending its own (they are separate processes).
            var target = (long)Math.Floor(ratePerReplica * (now + settings.Step - VirtualStart).TotalSeconds);
            for (var sentThisRound = true; sentThisRound;)
            {
                sentThisRound = false;
                for (var replica = 0; replica < replicaCount; replica++)
                {
                    if (issued[replica] < target)
                    {
                        issued[replica]++;
                        sentThisRound = true;
                        if (measured)
                        {
                            counts.NewRequests++;
                        }

                        await SendAsync(replica, retriesDone: 0).ConfigureAwait(false);
                    }
                }
            }

            async Task SendAsync(int replica, int retriesDone)
            {
                TimeSpan retryAfter;
                try
                {
                    using var request = new HttpRequestMessage(HttpMethod.Post, address);
                    using var response = await replicas[replica].SendAsync(request, CancellationToken.None).ConfigureAwait(false);
                    if (response.IsSuccessStatusCode)
                    {
                        if (measured)
                        {
                            counts.Successes++;
                        }

                        return;
                    }

                    retryAfter = response.StatusCode is HttpStatusCode.TooManyRequests or HttpStatusCode.ServiceUnavailable
                        ? ReadRetryAfter(response)
                        : RetryDelayWithoutHeader;
                }
                catch (Exception)
                {
                    // An open circuit breaker or a timeout: a failure the caller sees, retried after the default delay.
                    retryAfter = RetryDelayWithoutHeader;
                }

                if (measured)
                {
                    counts.ClientVisibleRejections++;
                }

                if (retriesDone < settings.ClientRetries)
                {
                    // A retry is never due before the next wave: waiting zero means "next step" on a stepped clock.
                    var dueAt = now + (retryAfter < settings.Step ? settings.Step : retryAfter);
                    retries.Enqueue(new PendingRetry(replica, retriesDone + 1), (dueAt, retrySequence++));
                }
            }
        }

        foreach (var replica in replicas)
        {
            replica.Dispose();
        }

        var priorityOne = backends.Where(b => b.Spec.Priority == 1).ToList();
        return new RunResult(
            router.Name,
            loadFactor,
            replicaCount,
            settings.Measured.TotalSeconds,
            settings.AggregateCapacity,
            priorityOne.Sum(b => b.Spec.RequestsPerSecond),
            counts.NewRequests,
            counts.Successes,
            backends.Sum(b => b.Throttled),
            counts.ClientVisibleRejections,
            priorityOne.Sum(b => b.Ok));
    }

    private static List<SimulatedBackend> CreateBackends(SimulationSettings settings, DateTimeOffset start)
    {
        var count = settings.Backends.Count;

        // Refills are spread over the period: real deployments do not share a clock.
        return [.. settings.Backends.Select((spec, index) => new SimulatedBackend(
            spec,
            new VirtualTokenBucket(spec.RequestsPerSecond, settings.ReplenishmentPeriod, start, settings.ReplenishmentPeriod * (index + 1) / (count + 1))))];
    }

    private static TimeSpan ReadRetryAfter(HttpResponseMessage response)
    {
        if (response.Headers.NonValidated.TryGetValues("retry-after-ms", out var milliseconds) &&
            double.TryParse(milliseconds.ToString(), System.Globalization.CultureInfo.InvariantCulture, out var ms))
        {
            return TimeSpan.FromMilliseconds(ms);
        }

        return response.Headers.RetryAfter?.Delta ?? RetryDelayWithoutHeader;
    }

    private readonly record struct PendingRetry(int Replica, int RetriesDone);

    private sealed class ClientCounts
    {
        public long NewRequests { get; set; }

        public long Successes { get; set; }

        public long ClientVisibleRejections { get; set; }
    }
}
