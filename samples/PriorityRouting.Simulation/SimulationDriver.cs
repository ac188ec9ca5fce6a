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
/// first delay), at most <see cref="SimulationSettings.ClientRetries"/> times, on the replica that answered it or, with
/// <see cref="SimulationSettings.RetriesOnAnyReplica"/>, on one drawn at random (a load balancer's choice). Polly's own retry would wait on the
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
    internal static readonly DateTimeOffset VirtualStart = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

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
        new PriorityRoutingRouter(tokenBudgets: true, queueWait: true, reserved: true),
        new PriorityRoutingRouter(tokenBudgets: true, declared: DeclaredQuotas.ReplicaShare),
        new PriorityRoutingRouter(tokenBudgets: true, declared: DeclaredQuotas.WholeQuota),
    ];

    /// <summary>
    /// Tells whether a router runs on a scenario: those it names, or, when it names none, every router but the ones that
    /// declare quotas (they differ from "ours" only where backends report no budget).
    /// </summary>
    internal static bool RunsOn(IRouterUnderTest router, SimulationScenario scenario)
        => scenario.Routers?.Contains(router.Name) ?? router is not PriorityRoutingRouter { Declared: not DeclaredQuotas.None };

    public static async Task<IReadOnlyList<RunResult>> RunAllAsync(SimulationSettings settings, Action<RunResult>? onResult = null)
    {
        var results = new List<RunResult>();
        foreach (var scenario in settings.Scenarios)
        {
            foreach (var replicas in settings.ReplicaCounts)
            {
                // Every router of a row meets the same arrivals: the ideal routers' shares are the row's.
                var ideals = new Dictionary<double, (double Priority, double AnyOrder)>();
                foreach (var router in Routers.Where(r => RunsOn(r, scenario) && (settings.RouterFilter is null || r.Name.Contains(settings.RouterFilter, StringComparison.Ordinal))))
                {
                    foreach (var load in scenario.Loads ?? settings.LoadFactors)
                    {
                        // On the thread pool, away from any synchronization context (a test runner's): the run
                        // installs its own, which it pumps itself.
                        if (!ideals.TryGetValue(load, out var ideal))
                        {
                            ideals[load] = ideal = (
                                IdealService.ServedShare(settings, scenario, load, replicas, IdealOrder.PriorityFirst),
                                IdealService.ServedShare(settings, scenario, load, replicas, IdealOrder.SoonestLostFirst));
                        }

                        var result = await Task.Run(() => Run(settings, scenario, router, load, replicas)).ConfigureAwait(false) with
                        {
                            IdealServedShare = ideal.Priority,
                            IdealAnyOrderServedShare = ideal.AnyOrder,
                        };
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

        // Only a router that releases waiters asynchronously needs the context; under any other, an await's continuation
        // runs inline as its task completes on the run's thread (with a custom context current, the runtime would queue
        // a ConfigureAwait(false) continuation to the thread pool instead: hedging's, for one).
        SynchronizationContext.SetSynchronizationContext(router.ReleasesWaitersAsynchronously ? pump : null);
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
        var delays = new VirtualDelays(time, pump);
        var backends = CreateBackends(settings, scenario, time.GetUtcNow());
        var measureFrom = VirtualStart + settings.Warmup;
        var measuredTime = scenario.Measured ?? settings.Measured;
        var end = measureFrom + measuredTime;
        var transport = new InMemoryBackendTransport(backends, time, measureFrom, end, scenario.MixedSizes, scenario.Completions, delays, settings.Seed ^ 0x7e11, settings.BudgetAtAdmission)
        {
            ReportsBudgets = scenario.ReportsBudgets,
        };
        var environment = new RouterEnvironment(settings, scenario, transport, time, delays);
        var replicas = router.CreateReplicas(environment, replicaCount);
        var address = router.RequestAddress(scenario);
        var requests = new SimulatedRequests(scenario, settings.Seed);

        // Its own draw: a run whose retries land on their replica draws exactly what it drew before the option existed.
        var landings = new Random(settings.Seed ^ 0x1a4d);

        var counts = new ClientCounts();
        var timesToSuccess = new List<double>();
        var foregroundTimesToSuccess = new List<double>();
        var retries = new PriorityQueue<PendingRetry, (DateTimeOffset Due, long Sequence)>();
        long retrySequence = 0;
        var arrivals = new ArrivalDraws(settings, scenario, replicaCount, loadFactor, requests, end + measuredTime - VirtualStart, measuredTime);

        // Requests are counted by cohort: those first sent inside the measured window, followed through every retry, even
        // after the window ends (the load goes on, unmeasured, until the last of them is served or given up), so that a
        // router that tells callers to come back late cannot push its rejections out of the count.
        var cohortPending = 0L;

        // Calls of the cohort still in flight (a completion on its way, or waiting inside the router): the run goes on
        // until they are answered.
        var cohortInFlight = 0L;

        for (var now = time.GetUtcNow(); now < end || cohortPending > 0 || cohortInFlight > 0; delays.AdvanceTo(now + settings.Step), now = time.GetUtcNow())
        {
            delays.Settle();
            var inWindow = now >= measureFrom && now < end;

            while (retries.TryPeek(out var due, out var priority) && priority.Due <= now)
            {
                retries.Dequeue();
                if (due.Measured)
                {
                    cohortPending--;
                }

                var landsOn = settings.RetriesOnAnyReplica ? landings.Next(replicaCount) : due.Replica;
                Send(landsOn, due.RetriesDone, due.Body, due.Background, due.Sequence, due.FirstSent, due.Measured);
            }

            // New requests: each replica's share of the offered load, interleaved so that no replica sees the others'
            // answers before sending its own (they are separate processes).
            foreach (var (replica, (body, background, sequence, dropped)) in arrivals.TakeDue(now + settings.Step - VirtualStart))
            {
                if (dropped)
                {
                    // Drawn like the classes scenario's (same foreground arrivals and sizes), never sent; its place in
                    // the stream still counts, so the foreground keeps its completion times.
                    continue;
                }

                if (inWindow)
                {
                    counts.NewRequests++;
                    counts.NewBackground += background ? 1 : 0;
                }

                Send(replica, retriesDone: 0, body, background, sequence, now, inWindow);
            }

            // Starts a call; one that does not complete at once is followed to its answer as the clock advances.
            void Send(int replica, int retriesDone, int body, bool background, long sequence, DateTimeOffset firstSent, bool measured)
            {
                var call = SendAsync(replica, retriesDone, body, background, sequence, firstSent, measured);
                if (!call.IsCompleted && measured)
                {
                    cohortInFlight++;
                    _ = call.ContinueWith(_ => cohortInFlight--, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                }
            }

            async Task SendAsync(int replica, int retriesDone, int body, bool background, long sequence, DateTimeOffset firstSent, bool measured)
            {
                if (measured && retriesDone > 0)
                {
                    counts.Retries++;
                }

                TimeSpan retryAfter;
                DateTimeOffset answeredAt;
                try
                {
                    using var request = requests.Create(address, body, background, sequence);

                    // A call released from a wait inside the router continues on the run's thread (see the remarks).
                    request.SetResilienceContext(ResilienceContextPool.Shared.Get(continueOnCapturedContext: true));
                    // On the run's context: a continuation without it would go to the thread pool.
                    using var response = await replicas[replica].SendAsync(request, CancellationToken.None).ConfigureAwait(true);

                    // The clock may have advanced while the call waited inside the router or its completion was on its way.
                    answeredAt = time.GetUtcNow();
                    if (response.IsSuccessStatusCode)
                    {
                        // Served inside the window: admitted in it, when the backend counted its tokens against the
                        // capacity the share divides by; its answer may arrive up to a completion (minutes) later.
                        var admittedAt = SimulatedRequests.AdmittedAt(response) ?? answeredAt;
                        if (admittedAt >= measureFrom && admittedAt < end)
                        {
                            counts.ServedUnits += requests.CostOf(body);
                        }

                        if (measured)
                        {
                            // A streamed answer is the caller's when its last token arrives.
                            var timeToSuccess = (answeredAt + RemainingStream(response) - firstSent).TotalMilliseconds;
                            counts.Successes++;
                            counts.RetriesServed += retriesDone > 0 ? 1 : 0;
                            counts.BackgroundSuccesses += background ? 1 : 0;
                            timesToSuccess.Add(timeToSuccess);
                            if (!background)
                            {
                                foregroundTimesToSuccess.Add(timeToSuccess);
                            }
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
                    retries.Enqueue(new PendingRetry(replica, retriesDone + 1, body, background, sequence, firstSent, measured), (dueAt, retrySequence++));
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
        foregroundTimesToSuccess.Sort();
        return new RunResult(
            router.Name,
            scenario.Name,
            scenario.DropsBackground ? loadFactor * (1 - scenario.BackgroundShare) : loadFactor,
            replicaCount,
            settings.ClientRetries,
            measuredTime.TotalSeconds,
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
            transport.Spill.Utilisation(),
            scenario.HasClasses,
            counts.NewRequests - counts.NewBackground,
            counts.Successes - counts.BackgroundSuccesses,
            counts.NewBackground,
            counts.BackgroundSuccesses,
            Percentile(foregroundTimesToSuccess, 0.99),
            backends.Sum(b => b.OkUnits));
    }

    private static TimeSpan RemainingStream(HttpResponseMessage response)
        => response.Headers.NonValidated.TryGetValues(SimulatedRequests.RemainingMillisecondsHeader, out var values) &&
           double.TryParse(values.ToString(), System.Globalization.CultureInfo.InvariantCulture, out var milliseconds)
            ? TimeSpan.FromMilliseconds(milliseconds)
            : TimeSpan.Zero;

    private static double Percentile(List<double> sorted, double quantile)
        => sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(quantile * sorted.Count) - 1)];

    internal static List<SimulatedBackend> CreateBackends(SimulationSettings settings, SimulationScenario scenario, DateTimeOffset start)
    {
        var count = scenario.Backends.Count;
        var period = scenario.RefillPeriod ?? settings.ReplenishmentPeriod;

        // Refills are spread over the period: real deployments do not share a clock.
        return [.. scenario.Backends.Select((spec, index) => new SimulatedBackend(
            spec,
            spec.Refill == BudgetRefill.Continuous
                ? new ContinuousTokenBucket(spec.CapacityPerSecond, period, start)
                : new VirtualTokenBucket(spec.CapacityPerSecond, period, start, period * (index + 1) / (count + 1))))];
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

    private readonly record struct PendingRetry(int Replica, int RetriesDone, int Body, bool Background, long Sequence, DateTimeOffset FirstSent, bool Measured);

    private sealed class ClientCounts
    {
        public long NewRequests { get; set; }

        public long Successes { get; set; }

        public long ClientVisibleRejections { get; set; }

        public long ServedUnits { get; set; }

        public long Retries { get; set; }

        public long RetriesServed { get; set; }

        public long NewBackground { get; set; }

        public long BackgroundSuccesses { get; set; }
    }
}
