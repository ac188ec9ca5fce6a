using System.Collections.Concurrent;
using System.Diagnostics;

namespace PriorityRouting.Demo;

/// <summary>
/// What one fake backend saw: totals and a per-second timeline of answers, written from Kestrel's threads.
/// </summary>
internal sealed class BackendStatistics
{
    private readonly ConcurrentDictionary<int, Counts> _perSecond = new();
    private readonly long _startTimestamp;
    private long _requests;
    private long _ok;
    private long _throttled;

    public BackendStatistics(long startTimestamp) => _startTimestamp = startTimestamp;

    public long Requests => Interlocked.Read(ref _requests);

    public long Ok => Interlocked.Read(ref _ok);

    public long Throttled => Interlocked.Read(ref _throttled);

    public void RecordOk()
    {
        Interlocked.Increment(ref _requests);
        Interlocked.Increment(ref _ok);
        Interlocked.Increment(ref CurrentSecond().Ok);
    }

    public void RecordThrottled()
    {
        Interlocked.Increment(ref _requests);
        Interlocked.Increment(ref _throttled);
        Interlocked.Increment(ref CurrentSecond().Throttled);
    }

    /// <summary>Returns the answers of each whole second since the start, with zeros where nothing came.</summary>
    public (double[] Ok, double[] Throttled) GetTimeline(int seconds)
    {
        var ok = new double[seconds];
        var throttled = new double[seconds];
        foreach (var (second, counts) in _perSecond)
        {
            if (second < seconds)
            {
                ok[second] = counts.Ok;
                throttled[second] = counts.Throttled;
            }
        }

        return (ok, throttled);
    }

    private Counts CurrentSecond()
        => _perSecond.GetOrAdd((int)Stopwatch.GetElapsedTime(_startTimestamp).TotalSeconds, static _ => new Counts());

    // Fields, not properties, so that Interlocked can update them in place.
    private sealed class Counts
    {
        public long Ok;
        public long Throttled;
    }
}
