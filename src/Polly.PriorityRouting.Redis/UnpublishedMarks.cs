using System.Collections.Concurrent;

namespace Polly.PriorityRouting.Redis;

/// <summary>
/// What this replica itself marked while Redis could not be written, published by the next synchronization. Bounded:
/// expired marks are dropped, and at most <see cref="Capacity"/> are kept.
/// </summary>
/// <remarks>
/// Kept apart from the mirror so that only first-hand deadlines are published, never ones learned from others. When the
/// set is full of marks still in force, a new key is not kept (its backend is still skipped locally; other replicas pay
/// their own 429 for it); a kept key is always extended.
/// </remarks>
internal sealed class UnpublishedMarks
{
    /// <summary>The default <see cref="Capacity"/>.</summary>
    public const int DefaultCapacity = 10_000;

    // Expired marks are dropped at most this often on the way in (measured on the writers' clock), and at most every
    // second when the set is full.
    private static readonly TimeSpan SweepInterval = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan FullSweepInterval = TimeSpan.FromSeconds(1);

    private readonly ConcurrentDictionary<BackendStateKey, BackendUnavailability> _marks = new();
    private int _count;
    private long _nextSweepTicks;
    private long _nextFullSweepTicks;

    public UnpublishedMarks(int capacity = DefaultCapacity) => Capacity = capacity;

    public int Capacity { get; }

    public int Count => Volatile.Read(ref _count);

    /// <summary>
    /// Keeps a mark for the next synchronization, or extends the kept one; drops it if it already expired.
    /// </summary>
    public void Keep(BackendStateKey key, BackendUnavailability unavailability, DateTimeOffset now)
    {
        if (!unavailability.IsActiveAt(now))
        {
            return;
        }

        DropExpiredIfDue(now, SweepInterval, ref _nextSweepTicks);
        while (true)
        {
            if (_marks.TryGetValue(key, out var kept))
            {
                if (kept.Until >= unavailability.Until || _marks.TryUpdate(key, unavailability, kept))
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

            if (_marks.TryAdd(key, unavailability))
            {
                Interlocked.Increment(ref _count);
                return;
            }
        }
    }

    /// <summary>
    /// Takes every kept mark out of the set and returns those still in force at <paramref name="now"/>. A mark extended
    /// meanwhile stays for the next round.
    /// </summary>
    public List<KeyValuePair<BackendStateKey, BackendUnavailability>> TakeActive(DateTimeOffset now)
    {
        var taken = new List<KeyValuePair<BackendStateKey, BackendUnavailability>>();
        foreach (var mark in _marks)
        {
            if (TryRemove(mark) && mark.Value.IsActiveAt(now))
            {
                taken.Add(mark);
            }
        }

        return taken;
    }

    private void DropExpiredIfDue(DateTimeOffset now, TimeSpan interval, ref long nextSweepTicks)
    {
        var due = Volatile.Read(ref nextSweepTicks);
        if (Count == 0 || now.UtcTicks < due ||
            Interlocked.CompareExchange(ref nextSweepTicks, now.UtcTicks + interval.Ticks, due) != due)
        {
            return;
        }

        foreach (var mark in _marks)
        {
            if (!mark.Value.IsActiveAt(now))
            {
                TryRemove(mark);
            }
        }
    }

    // Removes only if unchanged, so that a concurrent extension survives.
    private bool TryRemove(KeyValuePair<BackendStateKey, BackendUnavailability> mark)
    {
        if (_marks.TryRemove(mark))
        {
            Interlocked.Decrement(ref _count);
            return true;
        }

        return false;
    }
}
