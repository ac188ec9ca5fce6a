namespace PriorityRouting.Simulation;

/// <summary>
/// The served share an ideal router reaches on a row's arrivals: it knows every budget exactly, and its callers wait as
/// long as it takes. It is fluid — a request's tokens may be split over backends — and serves every arrival as early as
/// the capacity allows, so where the demand lulls with nothing left waiting, what refills then is lost to it too. Which
/// capacity it spends first is <see cref="IdealOrder"/>'s: the reserved capacity first, as a priority router does (the
/// reference for ours), or whatever is lost soonest (the most any router could serve, spending pay-as-you-go capacity in
/// a lull to keep the reserved one for the next burst).
/// </summary>
internal static class IdealService
{
    /// <summary>Returns the ideal router's units admitted inside the measured window, as a fraction of the capacity.</summary>
    public static double ServedShare(SimulationSettings settings, SimulationScenario scenario, double loadFactor, int replicaCount, IdealOrder order)
    {
        var start = SimulationDriver.VirtualStart;
        var measureFrom = start + settings.Warmup;
        var measured = scenario.Measured ?? settings.Measured;
        var end = measureFrom + measured;
        var backends = SimulationDriver.CreateBackends(settings, scenario, start);
        var requests = new SimulatedRequests(scenario, settings.Seed);
        var draws = new ArrivalDraws(settings, scenario, replicaCount, loadFactor, requests, end + measured - start, measured);
        var waiting = 0L;
        var served = 0L;
        for (var now = start; now < end; now += settings.Step)
        {
            foreach (var (_, arrival) in draws.TakeDue(now + settings.Step - start))
            {
                waiting += arrival.Dropped ? 0 : requests.CostOf(arrival.Body);
            }

            foreach (var backend in backends)
            {
                backend.Bucket.Advance(now);
            }

            // Within a priority (or over all of them), the capacity lost soonest first: the budget whose refill (or whose
            // being full) comes first.
            foreach (var budget in backends
                         .OrderBy(backend => order == IdealOrder.PriorityFirst ? backend.Spec.Priority : 0)
                         .ThenBy(backend => backend.Bucket.UntilReplenishment(now))
                         .Select(backend => backend.Bucket))
            {
                var taken = Math.Min(waiting, budget.Remaining);
                if (taken > 0 && budget.TryAcquire(now, out _, taken))
                {
                    waiting -= taken;
                    served += now >= measureFrom ? taken : 0;
                }
            }
        }

        return served / (scenario.AggregateCapacity * measured.TotalSeconds);
    }
}

/// <summary>Which capacity <see cref="IdealService"/> spends first.</summary>
internal enum IdealOrder
{
    /// <summary>The best priority first, as a priority router does; within it, what is lost soonest.</summary>
    PriorityFirst,

    /// <summary>Whatever is lost soonest, whatever its priority: the most any router could serve.</summary>
    SoonestLostFirst,
}
