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

    private readonly ConcurrentDictionary<BackendStateKey, BackendUnavailability> _entries = new();
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

        return _entries.TryGetValue(key, out unavailability);
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
    /// <returns><see langword="true"/> when the entry now holds <paramref name="unavailability"/>.</returns>
    public bool Mark(BackendStateKey key, BackendUnavailability unavailability, DateTimeOffset now)
    {
        if (key.Backend is null)
        {
            throw new ArgumentException("The key has no backend.", nameof(key));
        }

        SweepExpired(now, SweepInterval, ref _nextSweepTicks);
        while (true)
        {
            if (!_entries.TryGetValue(key, out var current))
            {
                if (Volatile.Read(ref _count) >= Capacity)
                {
                    SweepExpired(now, FullSweepInterval, ref _nextFullSweepTicks);
                    if (Volatile.Read(ref _count) >= Capacity)
                    {
                        return false;
                    }
                }

                if (_entries.TryAdd(key, unavailability))
                {
                    Interlocked.Increment(ref _count);
                    return true;
                }

                continue;
            }

            // Keep the later deadline: a re-failure extends, a late or out-of-order report never shortens.
            if (current.Until >= unavailability.Until)
            {
                return false;
            }

            if (_entries.TryUpdate(key, unavailability, current))
            {
                return true;
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

        return [.. _entries.Where(entry => string.Equals(entry.Key.Backend, backend, StringComparison.Ordinal))];
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
            if (!entry.Value.IsActiveAt(now) && _entries.TryRemove(entry))
            {
                Interlocked.Decrement(ref _count);
            }
        }
    }
}
