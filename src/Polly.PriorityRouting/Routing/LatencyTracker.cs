namespace Polly.PriorityRouting;

/// <summary>
/// A decaying average of the time to first byte of each backend of one pipeline, and the weight scaling that
/// latency-aware selection derives from it. Per process, per pipeline: nothing is shared through the store.
/// </summary>
/// <remarks>
/// <para>
/// Each sample moves the average half-way (<see cref="Alpha"/> = 0.5): a backend that slows down loses its traffic
/// within a few requests, and one that recovers wins it back within a few of its own samples.
/// </para>
/// <para>
/// Within a tier, a backend's weight is multiplied by (fastest average / its average)², at least
/// <see cref="MinWeightFactor"/>: a backend twice as slow as the fastest keeps a quarter of its weight, three times as
/// slow a ninth, and however slow, a twentieth — enough traffic to notice when it recovers. A backend without a sample
/// yet counts as fast, so that it gets measured. Lock-free and allocation-free.
/// </para>
/// </remarks>
internal sealed class LatencyTracker
{
    /// <summary>The share of each new sample in the average.</summary>
    public const double Alpha = 0.5;

    /// <summary>The least a backend's weight is scaled by, however slow it is.</summary>
    public const double MinWeightFactor = 0.05;

    /// <summary>Weights are scaled in thousandths, so that the draw stays an integer one.</summary>
    public const int Scale = 1000;

    // Milliseconds; NaN until the first sample.
    private readonly double[] _averages;

    public LatencyTracker(int backendCount)
    {
        _averages = new double[backendCount];
        Array.Fill(_averages, double.NaN);
    }

    /// <summary>Adds a sample of the backend at <paramref name="index"/> (see <see cref="RoutedBackend.Index"/>).</summary>
    public void Record(int index, TimeSpan timeToFirstByte)
    {
        var sample = Math.Max(0, timeToFirstByte.TotalMilliseconds);
        ref var slot = ref _averages[index];
        while (true)
        {
            var current = Volatile.Read(ref slot);
            var next = double.IsNaN(current) ? sample : current + (Alpha * (sample - current));
            if (Interlocked.CompareExchange(ref slot, next, current).Equals(current))
            {
                return;
            }
        }
    }

    /// <summary>Returns the backend's average time to first byte in milliseconds, or NaN before its first sample.</summary>
    public double GetAverage(int index) => Volatile.Read(ref _averages[index]);

    /// <summary>
    /// Returns a configured weight scaled by latency: <c>weight × 1000 × max(1/20, (fastest / average)²)</c>, at least 1.
    /// </summary>
    /// <param name="weight">The configured weight (1 to 1000).</param>
    /// <param name="average">The backend's average, or NaN when it has no sample.</param>
    /// <param name="fastest">The fastest average among the candidates, or +∞ when none has a sample.</param>
    public static int ScaleWeight(int weight, double average, double fastest)
    {
        var factor = 1.0;
        if (!double.IsNaN(average) && average > fastest)
        {
            var ratio = fastest / average;
            factor = Math.Max(MinWeightFactor, ratio * ratio);
        }

        return Math.Max(1, (int)(weight * Scale * factor));
    }
}
