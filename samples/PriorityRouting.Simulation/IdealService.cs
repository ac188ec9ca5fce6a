namespace PriorityRouting.Simulation;

/// <summary>
/// The served share an ideal router reaches on a row's arrivals: it knows every budget exactly, its callers wait as long
/// as it takes, and it spends first the capacity that is lost soonest (a windowed budget's at its refill, a continuous
/// one's when it would be full). It is fluid — a request's tokens may be split over backends — so it serves all the
/// arrivals it can as early as it can; no router that serves as much as it can before the measured window serves more
/// of it inside. Where the demand lulls with nothing left waiting, the capacity that refills then is lost to every
/// router: this is how much, on the row's own draw of arrivals.
/// </summary>
internal static class IdealService
{
    /// <summary>Returns the ideal router's units admitted inside the measured window, as a fraction of the capacity.</summary>
    public static double ServedShare(SimulationSettings settings, SimulationScenario scenario, double loadFactor, int replicaCount)
    {
        var start = SimulationDriver.VirtualStart;
        var measureFrom = start + settings.Warmup;
        var measured = scenario.Measured ?? settings.Measured;
        var end = measureFrom + measured;
        var budgets = SimulationDriver.CreateBackends(settings, scenario, start).Select(backend => backend.Bucket).ToArray();
        var requests = new SimulatedRequests(scenario, settings.Seed);
        var draws = new ArrivalDraws(settings, scenario, replicaCount, loadFactor, requests, end + measured - start, measured);
        var waiting = 0L;
        var served = 0L;
        for (var now = start; now < end; now += settings.Step)
        {
            draws.AdvanceTo(now + settings.Step - start);
            for (var arrived = true; arrived;)
            {
                arrived = false;
                for (var replica = 0; replica < replicaCount; replica++)
                {
                    if (draws.TryTake(replica, out var arrival))
                    {
                        arrived = true;
                        waiting += arrival.Dropped ? 0 : requests.CostOf(arrival.Body);
                    }
                }
            }

            foreach (var budget in budgets)
            {
                budget.Advance(now);
            }

            // The capacity lost soonest first: the budget whose refill (or whose being full) comes first.
            foreach (var budget in budgets.OrderBy(budget => budget.UntilReplenishment(now)))
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
