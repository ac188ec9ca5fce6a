namespace PriorityRouting.Simulation;

/// <summary>
/// When each replica's new requests arrive. Steady (no <see cref="SimulationScenario.Bursts"/>): evenly spaced at the
/// offered rate, replica r a fraction r/replicas of an interval ahead when staggered. Bursty: a Poisson process per
/// replica whose rate follows the scenario's burst multipliers (the same for every replica).
/// </summary>
internal sealed class Arrivals
{
    private readonly double _ratePerReplica;
    private readonly int _replicas;
    private readonly bool _stagger;
    private readonly long[] _issued;
    private readonly double[]? _multipliers;
    private readonly TimeSpan _segment;
    private readonly double[] _nextArrival;
    private readonly Random[] _random;
    private TimeSpan _elapsed;
    private double _offered;

    public Arrivals(SimulationSettings settings, SimulationScenario scenario, int replicas, double ratePerReplica, TimeSpan duration, TimeSpan measured)
    {
        _ratePerReplica = ratePerReplica;
        _replicas = replicas;
        _stagger = settings.StaggerReplicas;
        _issued = new long[replicas];
        _nextArrival = new double[replicas];
        _random = new Random[replicas];
        if (scenario.Bursts is { } bursts)
        {
            _segment = bursts.Segment;
            _multipliers = bursts.Multipliers(duration, settings.Warmup, measured, settings.Seed);
            for (var replica = 0; replica < replicas; replica++)
            {
                _random[replica] = new Random(unchecked((settings.Seed * 31) + replica + 0xA771));
                _nextArrival[replica] = Exponential(_random[replica]);
            }
        }
    }

    /// <summary>Moves to <paramref name="elapsed"/> since the start: the requests offered by then are due.</summary>
    public void AdvanceTo(TimeSpan elapsed)
    {
        if (_multipliers is null)
        {
            _offered = _ratePerReplica * elapsed.TotalSeconds;
            _elapsed = elapsed;
            return;
        }

        // The integral of the rate over (previous, elapsed], segment by segment.
        while (_elapsed < elapsed)
        {
            var index = (int)(_elapsed.Ticks / _segment.Ticks);
            var segmentEnd = TimeSpan.FromTicks((index + 1) * _segment.Ticks);
            var until = segmentEnd < elapsed ? segmentEnd : elapsed;
            _offered += _ratePerReplica * _multipliers[index % _multipliers.Length] * (until - _elapsed).TotalSeconds;
            _elapsed = until;
        }
    }

    /// <summary>Takes one due request of <paramref name="replica"/>, if any.</summary>
    public bool TryTake(int replica)
    {
        if (_multipliers is null)
        {
            var target = (long)Math.Floor(_offered + (_stagger ? (double)replica / _replicas : 0));
            if (_issued[replica] >= target)
            {
                return false;
            }

            _issued[replica]++;
            return true;
        }

        if (_nextArrival[replica] > _offered)
        {
            return false;
        }

        _nextArrival[replica] += Exponential(_random[replica]);
        return true;
    }

    private static double Exponential(Random random) => -Math.Log(1 - random.NextDouble());
}
