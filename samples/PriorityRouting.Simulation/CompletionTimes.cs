namespace PriorityRouting.Simulation;

/// <summary>
/// How long an admitted completion takes: log-normal with the given median and 95th percentile (capped), and for a
/// streamed answer the headers arrive at its first token; an answer that is not streamed arrives whole at its end.
/// </summary>
/// <param name="Median">The median completion time.</param>
/// <param name="P95">The 95th percentile of completion time: the long tail.</param>
/// <param name="StreamedShare">The share of answers that are streamed.</param>
/// <param name="FirstTokenMedian">The median time to the first token of a streamed answer.</param>
/// <param name="Max">The longest completion (a backend's own timeout).</param>
public sealed record CompletionTimes(TimeSpan Median, TimeSpan P95, double StreamedShare, TimeSpan FirstTokenMedian, TimeSpan Max)
{
    /// <summary>Gets chat completions: p50 2 s, p95 15 s, at most 2 minutes; half streamed, first token after ~0.4 s.</summary>
    public static CompletionTimes Chat { get; } = new(TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(15), 0.5, TimeSpan.FromMilliseconds(400), TimeSpan.FromMinutes(2));

    // z of the 95th percentile of the standard normal distribution.
    private const double Z95 = 1.6448536269514722;

    /// <summary>
    /// Draws the completion of the request at <paramref name="sequence"/> in a run's arrival stream, from its own stream
    /// (the run's <paramref name="seed"/> and the sequence): a request takes as long whichever backend, attempt or
    /// replica serves it and whatever else was admitted before it, so two runs that differ only in other traffic hand
    /// the same request the same completion.
    /// </summary>
    public (TimeSpan Headers, TimeSpan Completion) For(int seed, long sequence)
        => Draw(new Random(StreamSeed(seed, sequence)));

    /// <summary>Draws one completion: when its answer's headers arrive, and when its last byte does.</summary>
    public (TimeSpan Headers, TimeSpan Completion) Draw(Random random)
    {
        var sigma = Math.Log(P95 / Median) / Z95;
        var completion = Median * Math.Exp(sigma * StandardNormal(random));
        if (completion > Max)
        {
            completion = Max;
        }

        var streamed = random.NextDouble() < StreamedShare;
        var firstToken = FirstTokenMedian * Math.Exp(0.5 * StandardNormal(random));
        return (streamed && firstToken < completion ? firstToken : completion, completion);
    }

    // SplitMix64's finaliser over the seed and the sequence: neighbouring requests get unrelated streams (HashCode is
    // randomised per process, so it would not repeat across runs).
    private static int StreamSeed(int seed, long sequence)
    {
        var z = unchecked(((ulong)(uint)seed << 32) ^ (ulong)sequence) + 0x9E3779B97F4A7C15UL;
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        return (int)(z ^ (z >> 31));
    }

    // Box–Muller: two uniform draws, one normal; 1 - NextDouble() is never 0.
    private static double StandardNormal(Random random)
        => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
}
