namespace PriorityRouting.Demo;

/// <summary>
/// What the caller saw of one burst: how many calls failed and how long the successful ones took.
/// </summary>
internal sealed record BurstResult(int Sent, int Succeeded, int Failed, TimeSpan[] SortedLatencies, TimeSpan Elapsed)
{
    public TimeSpan Percentile(double fraction)
        => SortedLatencies.Length == 0
            ? TimeSpan.Zero
            : SortedLatencies[Math.Min(SortedLatencies.Length - 1, (int)Math.Ceiling(fraction * SortedLatencies.Length) - 1)];
}
