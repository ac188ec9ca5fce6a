namespace PriorityRouting.Simulation;

/// <summary>
/// A run's new requests as drawn: when each replica's arrive (<see cref="Arrivals"/>), and for each its body (its size)
/// and class, from the seed — the same for every router of a row, and for <see cref="IdealService"/>.
/// </summary>
internal sealed class ArrivalDraws
{
    private readonly SimulationScenario _scenario;
    private readonly Arrivals _arrivals;
    private readonly int _bodies;
    private readonly int _replicas;
    private readonly Random _sizes;
    private readonly Random _classes;
    private long _sequence;

    public ArrivalDraws(SimulationSettings settings, SimulationScenario scenario, int replicaCount, double loadFactor, SimulatedRequests requests, TimeSpan duration, TimeSpan measured)
    {
        _scenario = scenario;
        _bodies = requests.Count;
        _replicas = replicaCount;
        _sizes = new Random(settings.Seed ^ 0x5eed);
        _classes = new Random(settings.Seed ^ 0xc1a55);
        var ratePerReplica = loadFactor * scenario.AggregateCapacity / requests.MeanCost / replicaCount;
        _arrivals = new Arrivals(settings, scenario, replicaCount, ratePerReplica, duration, measured);
    }

    /// <summary>
    /// Moves to <paramref name="elapsed"/> since the run's start and takes the requests offered by then, interleaved
    /// replica by replica (one each in turn while any has one due), so that no replica sees the others' answers before
    /// sending its own (they are separate processes).
    /// </summary>
    public IEnumerable<(int Replica, DrawnArrival Arrival)> TakeDue(TimeSpan elapsed)
    {
        _arrivals.AdvanceTo(elapsed);
        for (var more = true; more;)
        {
            more = false;
            for (var replica = 0; replica < _replicas; replica++)
            {
                if (TryTake(replica, out var arrival))
                {
                    more = true;
                    yield return (replica, arrival);
                }
            }
        }
    }

    /// <summary>Takes one due request of <paramref name="replica"/>, if any, drawing its class and size.</summary>
    /// <param name="replica">The replica it arrives at.</param>
    /// <param name="arrival">
    /// Its body, class and place in the stream; <see cref="DrawnArrival.Dropped"/> when it is a background request the
    /// scenario draws but never sends (its baseline).
    /// </param>
    private bool TryTake(int replica, out DrawnArrival arrival)
    {
        if (!_arrivals.TryTake(replica))
        {
            arrival = default;
            return false;
        }

        var background = _scenario.HasClasses && _classes.NextDouble() < _scenario.BackgroundShare;
        var body = _sizes.Next(_bodies);
        arrival = new DrawnArrival(body, background, _sequence++, background && _scenario.DropsBackground);
        return true;
    }
}

/// <summary>One new request as drawn.</summary>
/// <param name="Body">The index of its body (its size) among the scenario's.</param>
/// <param name="Background">Whether it is background work.</param>
/// <param name="Sequence">Its place in the stream, dropped ones included: its completion time is drawn from it.</param>
/// <param name="Dropped">Whether it is drawn but never sent.</param>
internal readonly record struct DrawnArrival(int Body, bool Background, long Sequence, bool Dropped);
