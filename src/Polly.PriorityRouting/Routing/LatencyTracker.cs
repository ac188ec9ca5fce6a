namespace Polly.PriorityRouting;

/// <summary>
/// A robust, decaying average of the time to first byte of each backend of one pipeline, and the weight scaling that
/// latency-aware selection derives from it. Per process, per pipeline: nothing is shared through the store.
/// </summary>
/// <remarks>
/// <para>
/// Single samples must not move traffic: a backend's first sample is discarded (it pays the connection's set-up), and
/// each later one enters the average as the median of itself and the backend's two samples before it, so one outlier —
/// either way — changes nothing, while two in a row are a trend. The average then moves <see cref="Alpha"/> of the way
/// to that median: a backend that slows down loses most of its traffic within a few of its own samples, and one that
/// recovers wins it back within a few of its (fewer) samples.
/// </para>
/// <para>
/// Within a tier, a backend's weight is multiplied by (<see cref="Tolerance"/> × fastest average / its average)², at most
/// 1 and at least <see cref="MinWeightFactor"/>: backends within 25 % of the fastest count as equally fast (they split by
/// their configured weights, whatever the jitter); twice as slow keeps 39 % of its weight, three times as slow 17 %, and
/// however slow, a twentieth — enough traffic to notice when it recovers. A backend without an average yet counts as
/// fast, so that it gets measured. Reads are lock-free and allocation-free; a sample takes the backend's own lock.
/// </para>
/// </remarks>
internal sealed class LatencyTracker
{
    /// <summary>The share of each new (median-filtered) sample in the average.</summary>
    public const double Alpha = 0.3;

    /// <summary>How much slower than the fastest a backend may be and still count as equally fast.</summary>
    public const double Tolerance = 1.25;

    /// <summary>The least a backend's weight is scaled by, however slow it is.</summary>
    public const double MinWeightFactor = 0.05;

    /// <summary>Weights are scaled in thousandths, so that the draw stays an integer one.</summary>
    public const int Scale = 1000;

    private readonly Samples[] _backends;

    public LatencyTracker(int backendCount)
    {
        _backends = new Samples[backendCount];
        for (var i = 0; i < backendCount; i++)
        {
            _backends[i] = new Samples();
        }
    }

    /// <summary>Adds a sample of the backend at <paramref name="index"/> (see <see cref="RoutedBackend.Index"/>).</summary>
    public void Record(int index, TimeSpan timeToFirstByte) => _backends[index].Add(Math.Max(0, timeToFirstByte.TotalMilliseconds));

    /// <summary>Returns the backend's average time to first byte in milliseconds, or NaN before it has one.</summary>
    public double GetAverage(int index) => _backends[index].Average;

    /// <summary>
    /// Returns a configured weight scaled by latency: <c>weight × 1000 × clamp((1.25 × fastest / average)², 1/20, 1)</c>,
    /// at least 1.
    /// </summary>
    /// <param name="weight">The configured weight (1 to 1000).</param>
    /// <param name="average">The backend's average, or NaN when it has none.</param>
    /// <param name="fastest">The fastest average among the candidates, or +∞ when none has one.</param>
    public static int ScaleWeight(int weight, double average, double fastest)
    {
        var factor = 1.0;
        if (!double.IsNaN(average) && average > fastest * Tolerance)
        {
            var ratio = Tolerance * fastest / average;
            factor = Math.Max(MinWeightFactor, ratio * ratio);
        }

        return Math.Max(1, (int)(weight * Scale * factor));
    }

    /// <summary>One backend's last two samples and its average.</summary>
    private sealed class Samples
    {
        private int _count;
        private double _previous;
        private double _beforePrevious;
        private double _average = double.NaN;

        public double Average => Volatile.Read(ref _average);

        public void Add(double sample)
        {
            lock (this)
            {
                var count = _count;
                if (count < 3)
                {
                    _count = count + 1;
                }

                if (count == 0)
                {
                    // The first sample pays the connection's set-up (DNS, TCP, TLS): it says little about the backend.
                    return;
                }

                var filtered = count < 3 ? sample : Median(_beforePrevious, _previous, sample);
                _beforePrevious = _previous;
                _previous = sample;
                var average = _average;
                Volatile.Write(ref _average, double.IsNaN(average) ? filtered : average + (Alpha * (filtered - average)));
            }
        }

        private static double Median(double a, double b, double c) => Math.Max(Math.Min(a, b), Math.Min(Math.Max(a, b), c));
    }
}
