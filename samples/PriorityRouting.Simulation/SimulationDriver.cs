using System.Net;
using Microsoft.Extensions.Time.Testing;
using Polly;
using PriorityRouting.Simulation.Routers;

namespace PriorityRouting.Simulation;

/// <summary>
/// Runs every router at every offered load and number of replicas, on a virtual clock: each step sends what is due,
/// then advances the clock.
/// </summary>
/// <remarks>
/// The caller's retry is played by the driver, the same for every router: a 429/503 answer (or an exception) is
/// re-issued after the <c>retry-after-ms</c> / <c>Retry-After</c> it carried (2 s without one, the standard retry's
/// first delay), at most <see cref="SimulationSettings.ClientRetries"/> times. Polly's own retry would wait on the
/// virtual clock inside the call; the driver waits between waves instead. Most calls complete synchronously; a call
/// that waits on the virtual clock inside the router (<see cref="Polly.PriorityRouting.PriorityRoutingStrategyOptions.MaxQueueWait"/>)
/// stays in flight and completes while the clock advances: its timer's callback releases it, its continuation is posted
/// to the run's <see cref="DeterministicSynchronizationContext"/> (each request carries a resilience context that
/// continues on the captured context), and the driver runs it on to its answer right after the advance, recording it at
/// that moment. Nothing runs on other threads, so the run stays deterministic.
/// </remarks>
public static class SimulationDriver
{
    public const string RequestPath = "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21";

    public static readonly Uri PlaceholderAddress = new("http://placeholder/");

    private static readonly TimeSpan RetryDelayWithoutHeader = TimeSpan.FromSeconds(2);
    private static readonly DateTimeOffset VirtualStart = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>
    /// Gets the routers, side by side in every run: "ours (before)" is the same strategy with
    /// <see cref="Polly.PriorityRouting.PriorityRoutingStrategyOptions.TokenBudgets"/> off, which is how the strategy
    /// routed before the budget view existed. Both of ours give each replica its own store over shared deadlines and
    /// budget observations (what the Redis store gives).
    /// </summary>
    internal static IReadOnlyList<IRouterUnderTest> Routers { get; } =
    [
        new SingleEndpointRouter(),
        new HedgingOrderedGroupsRouter(),
        new ReplicaLocalPriorityRouter(),
        new UsageBasedRouter(),
        new PriorityRoutingRouter(tokenBudgets: false),
        new PriorityRoutingRouter(tokenBudgets: true),
        new PriorityRoutingRouter(tokenBudgets: true, queueWait: true),
    ];

    public static async Task<IReadOnlyList<RunResult>> RunAllAsync(SimulationSettings settings, Action<RunResult>? onResult = null)
    {
        var results = new List<RunResult>();
        foreach (var scenario in settings.Scenarios)
        {
            foreach (var replicas in settings.ReplicaCounts)
            {
                foreach (var router in Routers.Where(r => settings.RouterFilter is null || r.Name.Contains(settings.RouterFilter, StringComparison.Ordinal)))
                {
                    foreach (var load in settings.LoadFactors)
                    {
                        // On the thread pool, away from any synchronization context (a test runner's): the run
                        // installs its own, which it pumps itself.
                        var result = await Task.Run(() => Run(settings, scenario, router, load, replicas)).ConfigureAwait(false);
                        onResult?.Invoke(result);
                        results.Add(result);
                    }
                }
            }
        }

        return results;
    }

    internal static RunResult Run(SimulationSettings settings, SimulationScenario scenario, IRouterUnderTest router, double loadFactor, int replicaCount)
    {
        var outer = SynchronizationContext.Current;
        var pump = new DeterministicSynchronizationContext();
        SynchronizationContext.SetSynchronizationContext(pump);
        try
        {
            return Run(settings, scenario, router, loadFactor, replicaCount, pump);
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(outer);
        }
    }

    private static RunResult Run(SimulationSettings settings, SimulationScenario scenario, IRouterUnderTest router, double loadFactor, int replicaCount, DeterministicSynchronizationContext pump)
    {
        var time = new FakeTimeProvider(VirtualStart);
        var backends = CreateBackends(settings, scenario, time.GetUtcNow());
        var measureFrom = VirtualStart + settings.Warmup;
        var end = measureFrom + settings.Measured;
        var transport = new InMemoryBackendTransport(backends, time, measureFrom, end, scenario.MixedSizes);
        var environment = new RouterEnvironment(settings, scenario, transport, time);
        var replicas = router.CreateReplicas(environment, replicaCount);
        var address = router.RequestAddress(scenario);
        var requests = new SimulatedRequests(scenario, settings.Seed);
        var sizes = new Random(settings.Seed ^ 0x5eed);

        var counts = new ClientCounts();
        var timesToSuccess = new List<double>();
        var retries = new PriorityQueue<PendingRetry, (DateTimeOffset Due, long Sequence)>();
        long retrySequence = 0;
        var issued = new long[replicaCount];
        var ratePerReplica = loadFactor * scenario.AggregateCapacity / requests.MeanCost / replicaCount;

        // How many requests a replica has been offered by now. Staggered, replica r is a fraction r/replicas of an
        // interval ahead: processes started apart do not send in lockstep, so their requests interleave in time.
        long Target(double offered, int replica)
            => (long)Math.Floor(offered + (settings.StaggerReplicas ? (double)replica / replicaCount : 0));

        // Requests are counted by cohort: those first sent inside the measured window, followed through every retry, even
        // after the window ends (the load goes on, unmeasured, until the last of them is served or given up), so that a
        // router that tells callers to come back late cannot push its rejections out of the count.
        var cohortPending = 0L;

        // Calls of the cohort still in flight (waiting inside the router): the run goes on until they are answered.
        var cohortInFlight = 0L;
        for (var now = time.GetUtcNow(); now < end || cohortPending > 0 || cohortInFlight > 0; time.Advance(settings.Step), pump.RunPending(), now = time.GetUtcNow())
        {
            var inWindow = now >= measureFrom && now < end;

            while (retries.TryPeek(out var due, out var priority) && priority.Due <= now)
            {
                retries.Dequeue();
                if (due.Measured)
                {
                    cohortPending--;
                }

                Send(due.Replica, due.RetriesDone, due.Body, due.FirstSent, due.Measured);
            }

            // New requests: each replica's share of the offered load, interleaved so that no replica sees the others'
            // answers before sending its own (they are separate processes).
            var offered = ratePerReplica * (now + settings.Step - VirtualStart).TotalSeconds;
            for (var sentThisRound = true; sentThisRound;)
            {
                sentThisRound = false;
                for (var replica = 0; replica < replicaCount; replica++)
                {
                    if (issued[replica] < Target(offered, replica))
                    {
                        issued[replica]++;
                        sentThisRound = true;
                        if (inWindow)
                        {
                            counts.NewRequests++;
                        }

                        Send(replica, retriesDone: 0, sizes.Next(requests.Count), now, inWindow);
                    }
                }
            }

            // Starts a call; one that does not complete at once is followed to its answer as the clock advances.
            void Send(int replica, int retriesDone, int body, DateTimeOffset firstSent, bool measured)
            {
                var call = SendAsync(replica, retriesDone, body, firstSent, measured);
                if (!call.IsCompleted && measured)
                {
                    cohortInFlight++;
                    _ = call.ContinueWith(_ => cohortInFlight--, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                }
            }

            async Task SendAsync(int replica, int retriesDone, int body, DateTimeOffset firstSent, bool measured)
            {
                if (measured && retriesDone > 0)
                {
                    counts.Retries++;
                }

                TimeSpan retryAfter;
                DateTimeOffset answeredAt;
                try
                {
                    using var request = requests.Create(address, body);

                    // A call released from a wait inside the router continues on the run's thread (see the remarks).
                    request.SetResilienceContext(ResilienceContextPool.Shared.Get(continueOnCapturedContext: true));
                    // On the run's context: a continuation without it would go to the thread pool.
                    using var response = await replicas[replica].SendAsync(request, CancellationToken.None).ConfigureAwait(true);

                    // The clock may have advanced while the call waited inside the router.
                    answeredAt = time.GetUtcNow();
                    if (response.IsSuccessStatusCode)
                    {
                        if (answeredAt >= measureFrom && answeredAt < end)
                        {
                            counts.ServedUnits += requests.CostOf(body);
                        }

                        if (measured)
                        {
                            counts.Successes++;
                            counts.RetriesServed += retriesDone > 0 ? 1 : 0;
                            timesToSuccess.Add((answeredAt - firstSent).TotalMilliseconds);
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
                    answeredAt = time.GetUtcNow();
                }

                if (measured)
                {
                    counts.ClientVisibleRejections++;
                }

                if (retriesDone < settings.ClientRetries)
                {
                    // A retry is never due before the next wave: waiting zero means "next step" on a stepped clock.
                    var dueAt = answeredAt + (retryAfter < settings.Step ? settings.Step : retryAfter);
                    retries.Enqueue(new PendingRetry(replica, retriesDone + 1, body, firstSent, measured), (dueAt, retrySequence++));
                    cohortPending += measured ? 1 : 0;
                }
            }
        }

        foreach (var replica in replicas)
        {
            replica.Dispose();
        }

        var priorityOne = backends.Where(b => b.Spec.Priority == 1).ToList();
        timesToSuccess.Sort();
        return new RunResult(
            router.Name,
            scenario.Name,
            loadFactor,
            replicaCount,
            settings.ClientRetries,
            settings.Measured.TotalSeconds,
            scenario.AggregateCapacity,
            scenario.PriorityOneCapacity,
            counts.NewRequests,
            counts.Successes,
            counts.ServedUnits,
            backends.Sum(b => b.Throttled),
            counts.ClientVisibleRejections,
            priorityOne.Sum(b => b.OkUnits),
            counts.Retries,
            counts.RetriesServed,
            Percentile(timesToSuccess, 0.50),
            Percentile(timesToSuccess, 0.99),
            transport.Spill.Utilisation());
    }

    private static double Percentile(List<double> sorted, double quantile)
        => sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(quantile * sorted.Count) - 1)];

    private static List<SimulatedBackend> CreateBackends(SimulationSettings settings, SimulationScenario scenario, DateTimeOffset start)
    {
        var count = scenario.Backends.Count;

        // Refills are spread over the period: real deployments do not share a clock.
        return [.. scenario.Backends.Select((spec, index) => new SimulatedBackend(
            spec,
            new VirtualTokenBucket(spec.CapacityPerSecond, settings.ReplenishmentPeriod, start, settings.ReplenishmentPeriod * (index + 1) / (count + 1))))];
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

    private readonly record struct PendingRetry(int Replica, int RetriesDone, int Body, DateTimeOffset FirstSent, bool Measured);

    private sealed class ClientCounts
    {
        public long NewRequests { get; set; }

        public long Successes { get; set; }

        public long ClientVisibleRejections { get; set; }

        public long ServedUnits { get; set; }

        public long Retries { get; set; }

        public long RetriesServed { get; set; }
    }
}
