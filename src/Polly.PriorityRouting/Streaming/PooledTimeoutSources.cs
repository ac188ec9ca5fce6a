namespace Polly.PriorityRouting;

/// <summary>
/// Cancellation sources that cancel themselves after a delay, reused across first-byte waits: with the system clock a
/// source (and the timer it keeps) is reset and handed to the next wait, so that a wait allocates nothing once warm.
/// </summary>
/// <remarks>
/// Bounded: at most a few sources per core are kept; the rest are disposed. Other clocks (the fake clock of tests) get
/// a fresh source each time, from <see cref="TimeProvider"/>.
/// </remarks>
internal static class PooledTimeoutSources
{
    private static readonly CancellationTokenSource?[] Pool = new CancellationTokenSource?[Math.Clamp(Environment.ProcessorCount * 4, 8, 256)];

    public static CancellationTokenSource Rent(TimeProvider timeProvider, TimeSpan delay)
    {
        if (timeProvider != TimeProvider.System)
        {
            return new CancellationTokenSource(delay, timeProvider);
        }

        var pool = Pool;
        for (var i = 0; i < pool.Length; i++)
        {
            if (Volatile.Read(ref pool[i]) is not null && Interlocked.Exchange(ref pool[i], null) is { } source)
            {
                source.CancelAfter(delay);
                return source;
            }
        }

        return new CancellationTokenSource(delay);
    }

    /// <summary>Keeps the source for the next wait if it never cancelled, else disposes it.</summary>
    public static void Return(TimeProvider timeProvider, CancellationTokenSource source)
    {
        if (timeProvider == TimeProvider.System && source.TryReset())
        {
            var pool = Pool;
            for (var i = 0; i < pool.Length; i++)
            {
                if (Interlocked.CompareExchange(ref pool[i], source, null) is null)
                {
                    return;
                }
            }
        }

        source.Dispose();
    }
}
