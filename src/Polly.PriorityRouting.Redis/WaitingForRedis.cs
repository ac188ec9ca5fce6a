using System.Collections.Concurrent;

namespace Polly.PriorityRouting.Redis;

/// <summary>
/// What this replica wrote while Redis could not be written, waiting for the next synchronization to publish it:
/// bounded, and each entry dropped once it expires. The one policy for throttle marks and affinity pins alike.
/// </summary>
/// <remarks>
/// When the set is full of entries still in force, a new key is not kept (it still applies on this replica; the other
/// replicas do without it); a kept key always takes the later expiry. Expired entries are dropped at most every
/// <see cref="SweepInterval"/> on the way in, and at most every second when the set is full.
/// </remarks>
/// <typeparam name="TKey">The key: a backend (and partition), or an id.</typeparam>
/// <typeparam name="TValue">What waits to be published.</typeparam>
internal sealed class WaitingForRedis<TKey, TValue>
    where TKey : notnull
{
    /// <summary>The default <see cref="Capacity"/>: 100 writes a second for well over a minute of outage.</summary>
    public const int DefaultCapacity = 10_000;

    private static readonly TimeSpan SweepInterval = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan FullSweepInterval = TimeSpan.FromSeconds(1);

    private readonly ConcurrentDictionary<TKey, TValue> _entries;
    private readonly Func<TValue, DateTimeOffset> _expiresAt;
    private int _count;
    private long _nextSweepTicks;
    private long _nextFullSweepTicks;

    public WaitingForRedis(Func<TValue, DateTimeOffset> expiresAt, int capacity, IEqualityComparer<TKey>? comparer = null)
    {
        _expiresAt = expiresAt;
        _entries = new ConcurrentDictionary<TKey, TValue>(comparer);
        Capacity = capacity;
    }

    public int Capacity { get; }

    public int Count => Volatile.Read(ref _count);

    /// <summary>Gets the entries kept right now, in no order; the set may change while the caller walks them.</summary>
    public IEnumerable<KeyValuePair<TKey, TValue>> Entries => _entries;

    /// <summary>Keeps an entry, or extends the kept one; drops it if it already expired.</summary>
    public void Keep(TKey key, TValue value, DateTimeOffset now)
    {
        var expiresAt = _expiresAt(value);
        if (expiresAt <= now)
        {
            return;
        }

        DropExpiredIfDue(now, SweepInterval, ref _nextSweepTicks);
        while (true)
        {
            if (_entries.TryGetValue(key, out var kept))
            {
                if (_expiresAt(kept) >= expiresAt || _entries.TryUpdate(key, value, kept))
                {
                    return;
                }

                continue;
            }

            if (Count >= Capacity)
            {
                DropExpiredIfDue(now, FullSweepInterval, ref _nextFullSweepTicks);
                if (Count >= Capacity)
                {
                    return;
                }
            }

            if (_entries.TryAdd(key, value))
            {
                Interlocked.Increment(ref _count);
                return;
            }
        }
    }

    /// <summary>Forgets a key, whatever it holds.</summary>
    public void Forget(TKey key)
    {
        if (_entries.TryRemove(key, out _))
        {
            Interlocked.Decrement(ref _count);
        }
    }

    /// <summary>Returns whether <paramref name="key"/> is kept.</summary>
    public bool Contains(TKey key) => _entries.ContainsKey(key);

    /// <summary>
    /// Takes an entry out only if it is unchanged, so that an extension or a deletion made meanwhile is seen.
    /// </summary>
    /// <returns>Whether this call took it out.</returns>
    public bool TryTake(KeyValuePair<TKey, TValue> entry)
    {
        if (_entries.TryRemove(entry))
        {
            Interlocked.Decrement(ref _count);
            return true;
        }

        return false;
    }

    private void DropExpiredIfDue(DateTimeOffset now, TimeSpan interval, ref long nextSweepTicks)
    {
        var due = Volatile.Read(ref nextSweepTicks);
        if (Count == 0 || now.UtcTicks < due ||
            Interlocked.CompareExchange(ref nextSweepTicks, now.UtcTicks + interval.Ticks, due) != due)
        {
            return;
        }

        foreach (var entry in _entries)
        {
            if (_expiresAt(entry.Value) <= now)
            {
                TryTake(entry);
            }
        }
    }
}
