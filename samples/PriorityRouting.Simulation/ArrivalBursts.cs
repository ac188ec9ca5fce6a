namespace PriorityRouting.Simulation;

/// <summary>
/// Bursty arrivals: time is cut in segments, each at a high or a low multiple of the mean rate (drawn from the seed, the
/// same for every replica, as users behind one load balancer burst together), normalised so that the run's mean is the
/// offered load; within a segment each replica's requests arrive as a Poisson process.
/// </summary>
/// <param name="Segment">How long one burst (or lull) lasts.</param>
/// <param name="HighMultiplier">The rate of a burst, as a multiple of the mean.</param>
/// <param name="HighShare">The share of segments that are bursts.</param>
public sealed record ArrivalBursts(TimeSpan Segment, double HighMultiplier, double HighShare)
{
    /// <summary>Gets the default: 2-second segments, one in five at 3× the mean rate, the others at half.</summary>
    public static ArrivalBursts Default { get; } = new(TimeSpan.FromSeconds(2), 3.0, 0.2);

    /// <summary>Returns the rate multiplier of every segment of a run of <paramref name="duration"/>, with a mean of exactly 1.</summary>
    public double[] Multipliers(TimeSpan duration, int seed)
    {
        var random = new Random(seed);
        var low = (1 - (HighShare * HighMultiplier)) / (1 - HighShare);
        var segments = new double[(int)Math.Ceiling(duration / Segment) + 1];
        for (var i = 0; i < segments.Length; i++)
        {
            segments[i] = random.NextDouble() < HighShare ? HighMultiplier : low;
        }

        var mean = segments.Average();
        for (var i = 0; i < segments.Length; i++)
        {
            segments[i] /= mean;
        }

        return segments;
    }
}
