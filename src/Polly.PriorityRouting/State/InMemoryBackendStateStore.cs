using System.Collections.Concurrent;

namespace Polly.PriorityRouting;

/// <summary>
/// A process-wide, thread-safe <see cref="IBackendStateStore"/> kept in memory.
/// </summary>
/// <remarks>
/// Reads are lock-free and allocate nothing. The store holds at most <see cref="Capacity"/> entries: expired entries
/// are ignored by readers, swept by a write at most every 30 seconds, and swept at once when a write finds the store
/// full. When it is full of entries that are all still active, a new key is not kept (the backend or partition is
/// then routed to until its next failure marks it again) — an existing key is always extended.
/// </remarks>
public sealed class InMemoryBackendStateStore : IBackendStateStore
{
    /// <summary>The default <see cref="Capacity"/>.</summary>
    public const int DefaultCapacity = 100_000;

    // Expired entries are swept at most this often (measured on the writers' clock), to keep writes cheap.
    private static readonly TimeSpan SweepInterval = TimeSpan.FromSeconds(30);

    // A store full of active entries must not sweep on every write: at most this often.
    private static readonly TimeSpan FullSweepInterval = TimeSpan.FromSeconds(1);

    private readonly ConcurrentDictionary<BackendStateKey, Entry> _entries = new();
    private long _nextSweepTicks;
    private long _nextFullSweepTicks;

    // Nothing marked is the common case: readers skip hashing the key. (ConcurrentDictionary.IsEmpty would take locks.)
    private int _count;

    /// <summary>
    /// Initializes a new instance of the <see cref="InMemoryBackendStateStore"/> class holding at most
    /// <see cref="DefaultCapacity"/> entries.
    /// </summary>
    public InMemoryBackendStateStore()
        : this(DefaultCapacity)
    {
    }

    /// <summary>
    /// Initializes a new instance of the <see cref="InMemoryBackendStateStore"/> class.
    /// </summary>
    /// <param name="capacity">The most entries the store holds, at least 1.</param>
    public InMemoryBackendStateStore(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Capacity = capacity;
    }

    /// <summary>
    /// Gets the store shared by every pipeline of the process that does not configure its own.
    /// </summary>
    public static InMemoryBackendStateStore Shared { get; } = new();

    /// <summary>Gets the most entries the store holds.</summary>
    public int Capacity { get; }

    /// <summary>
    /// Gets the number of entries currently held, expired or not.
    /// </summary>
    public int Count => Volatile.Read(ref _count);

    /// <inheritdoc/>
    public bool TryGetUnavailability(BackendStateKey key, out BackendUnavailability unavailability)
    {
        if (Volatile.Read(ref _count) == 0)
        {
            unavailability = default;
            return false;
        }

        if (_entries.TryGetValue(key, out var entry))
        {
            unavailability = entry.Unavailability;
            return true;
        }

        unavailability = default;
        return false;
    }

    /// <inheritdoc/>
    public ValueTask MarkUnavailableAsync(
        BackendStateKey key,
        BackendUnavailability unavailability,
        DateTimeOffset now,
        CancellationToken cancellationToken)
    {
        Mark(key, unavailability, now);
        return default;
    }

    /// <summary>
    /// Marks an entry synchronously; the same as <see cref="MarkUnavailableAsync"/>, which never waits.
    /// </summary>
    /// <param name="key">The backend, and optionally the partition.</param>
    /// <param name="unavailability">The new deadline and its reason.</param>
    /// <param name="now">The current time, which drives the sweep of expired entries.</param>
    /// <returns>
    /// <see langword="true"/> when the entry now ends at <paramref name="unavailability"/>'s deadline (it was created or
    /// extended); a mark that only brings a later <see cref="BackendUnavailability.MarkedAt"/> returns <see langword="false"/>.
    /// </returns>
    public bool Mark(BackendStateKey key, BackendUnavailability unavailability, DateTimeOffset now)
    {
        if (key.Backend is null)
        {
            throw new ArgumentException("The key has no backend.", nameof(key));
        }

        SweepExpired(now, SweepInterval, ref _nextSweepTicks);
        while (true)
        {
            if (!_entries.TryGetValue(key, out var stored))
            {
                if (Volatile.Read(ref _count) >= Capacity)
                {
                    SweepExpired(now, FullSweepInterval, ref _nextFullSweepTicks);
                    if (Volatile.Read(ref _count) >= Capacity)
                    {
                        return false;
                    }
                }

                if (_entries.TryAdd(key, new Entry(unavailability)))
                {
                    Interlocked.Increment(ref _count);
                    return true;
                }

                continue;
            }

            // Keep the later deadline: a re-failure extends, a late or out-of-order report never shortens.
            // And the later marking time, even under a farther deadline: readers honour a deadline at most their own
            // longest cooldown from its mark, so a fresh failure under a peer's far deadline counts from its own time.
            var current = stored.Unavailability;
            var extends = unavailability.Until > current.Until;
            var markedAt = unavailability.MarkedAt > current.MarkedAt ? unavailability.MarkedAt : current.MarkedAt;
            if (!extends && markedAt == current.MarkedAt)
            {
                return false;
            }

            var kept = extends ? unavailability : current;
            var merged = new Entry(kept.Until, kept.Reason, markedAt);

            // Compared as stored, marking time included (the public equality leaves it out).
            if (_entries.TryUpdate(key, merged, stored))
            {
                return extends;
            }
        }
    }

    /// <inheritdoc/>
    public IReadOnlyList<KeyValuePair<BackendStateKey, BackendUnavailability>> GetEntries(string backend)
    {
        ArgumentNullException.ThrowIfNull(backend);
        if (Volatile.Read(ref _count) == 0)
        {
            return [];
        }

        return [.. _entries
            .Where(entry => string.Equals(entry.Key.Backend, backend, StringComparison.Ordinal))
            .Select(entry => KeyValuePair.Create(entry.Key, entry.Value.Unavailability))];
    }

    /// <summary>
    /// Removes every entry. Intended for tests and for operators who want to put all backends back into rotation.
    /// </summary>
    public void Clear()
    {
        foreach (var entry in _entries)
        {
            if (_entries.TryRemove(entry))
            {
                Interlocked.Decrement(ref _count);
            }
        }
    }

    /// <summary>
    /// Removes one entry, putting the backend (or partition) back into rotation at once.
    /// </summary>
    /// <param name="key">The backend, and optionally the partition.</param>
    /// <returns><see langword="true"/> when an entry was removed.</returns>
    public bool Reset(BackendStateKey key)
    {
        if (_entries.TryRemove(key, out _))
        {
            Interlocked.Decrement(ref _count);
            return true;
        }

        return false;
    }

    private void SweepExpired(DateTimeOffset now, TimeSpan interval, ref long nextSweepTicks)
    {
        var nextSweep = Volatile.Read(ref nextSweepTicks);
        if (now.UtcTicks < nextSweep ||
            Interlocked.CompareExchange(ref nextSweepTicks, now.UtcTicks + interval.Ticks, nextSweep) != nextSweep)
        {
            return;
        }

        if (Volatile.Read(ref _count) == 0)
        {
            return;
        }

        foreach (var entry in _entries)
        {
            // Removes only if unchanged, so a concurrent extension survives the sweep.
            if (!entry.Value.Unavailability.IsActiveAt(now) && _entries.TryRemove(entry))
            {
                Interlocked.Decrement(ref _count);
            }
        }
    }

    /// <summary>An entry as stored: compared field by field, marking time included, so that no update is lost.</summary>
    private readonly record struct Entry(DateTimeOffset Until, BackendUnavailableReason Reason, DateTimeOffset MarkedAt)
    {
        public Entry(BackendUnavailability unavailability)
            : this(unavailability.Until, unavailability.Reason, unavailability.MarkedAt)
        {
        }

        public BackendUnavailability Unavailability => new(Until, Reason, MarkedAt);
    }
}
