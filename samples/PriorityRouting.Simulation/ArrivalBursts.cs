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

    /// <summary>
    /// Returns the rate multiplier of every segment of a run of <paramref name="duration"/>: the segments that start
    /// inside the measured window (<paramref name="measuredFrom"/> for <paramref name="measured"/>) have a mean of exactly
    /// 1, and so have the others, so that the load a row names is the load its measured window offers (normalised over
    /// the whole run only, a 40-second window of 20 segments offered 0.885 of it on the default seed).
    /// </summary>
    public double[] Multipliers(TimeSpan duration, TimeSpan measuredFrom, TimeSpan measured, int seed)
    {
        var random = new Random(seed);
        var low = (1 - (HighShare * HighMultiplier)) / (1 - HighShare);
        var segments = new double[(int)Math.Ceiling(duration / Segment) + 1];
        for (var i = 0; i < segments.Length; i++)
        {
            segments[i] = random.NextDouble() < HighShare ? HighMultiplier : low;
        }

        var first = (int)Math.Ceiling(measuredFrom / Segment);
        var last = Math.Min(segments.Length, (int)Math.Ceiling((measuredFrom + measured) / Segment));
        Normalise(segments, i => i >= first && i < last);
        Normalise(segments, i => i < first || i >= last);
        return segments;
    }

    private static void Normalise(double[] segments, Func<int, bool> belongs)
    {
        var indices = Enumerable.Range(0, segments.Length).Where(belongs).ToList();
        if (indices.Count == 0)
        {
            return;
        }

        var mean = indices.Average(i => segments[i]);
        foreach (var i in indices)
        {
            segments[i] /= mean;
        }
    }
}
