using System.Collections.Concurrent;

namespace Polly.PriorityRouting;

/// <summary>
/// A process-wide, thread-safe <see cref="IBackendStateStore"/> kept in memory.
/// </summary>
/// <remarks>
/// Reads are lock-free and allocate nothing. Entries whose deadline has passed are ignored by readers and removed
/// on a later write, so a store never grows beyond the number of backends marked within one cooldown.
/// </remarks>
public sealed class InMemoryBackendStateStore : IBackendStateStore
{
    // Expired entries are swept at most this often (measured on the writers' clock), to keep writes cheap.
    private static readonly TimeSpan SweepInterval = TimeSpan.FromSeconds(30);

    private readonly ConcurrentDictionary<string, BackendUnavailability> _entries = new(StringComparer.Ordinal);
    private long _nextSweepTicks;

    // Nothing marked is the common case: readers skip hashing the name. (ConcurrentDictionary.IsEmpty would take locks.)
    private int _count;

    /// <summary>
    /// Gets the store shared by every pipeline of the process that does not configure its own.
    /// </summary>
    public static InMemoryBackendStateStore Shared { get; } = new();

    /// <summary>
    /// Gets the number of entries currently held, expired or not.
    /// </summary>
    public int Count => _entries.Count;

    /// <inheritdoc/>
    public bool TryGetUnavailability(string backendName, out BackendUnavailability unavailability)
    {
        ArgumentNullException.ThrowIfNull(backendName);
        if (Volatile.Read(ref _count) == 0)
        {
            unavailability = default;
            return false;
        }

        return _entries.TryGetValue(backendName, out unavailability);
    }

    /// <inheritdoc/>
    public ValueTask MarkUnavailableAsync(
        string backendName,
        BackendUnavailability unavailability,
        DateTimeOffset now,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(backendName);
        Mark(backendName, unavailability);
        SweepExpired(now);
        return default;
    }

    /// <summary>
    /// Removes every entry. Intended for tests and for operators who want to put all backends back into rotation.
    /// </summary>
    public void Clear()
    {
        _entries.Clear();
        Volatile.Write(ref _count, _entries.Count);
    }

    /// <summary>
    /// Removes the entry of one backend, putting it back into rotation at once.
    /// </summary>
    /// <param name="backendName">The backend's name.</param>
    /// <returns><see langword="true"/> when an entry was removed.</returns>
    public bool Reset(string backendName)
    {
        ArgumentNullException.ThrowIfNull(backendName);
        if (_entries.TryRemove(backendName, out _))
        {
            Interlocked.Decrement(ref _count);
            return true;
        }

        return false;
    }

    private void Mark(string backendName, BackendUnavailability unavailability)
    {
        while (true)
        {
            if (!_entries.TryGetValue(backendName, out var current))
            {
                if (_entries.TryAdd(backendName, unavailability))
                {
                    Interlocked.Increment(ref _count);
                    return;
                }

                continue;
            }

            // Keep the later deadline: a re-failure extends, a late or out-of-order report never shortens.
            if (current.Until >= unavailability.Until)
            {
                return;
            }

            if (_entries.TryUpdate(backendName, unavailability, current))
            {
                return;
            }
        }
    }

    private void SweepExpired(DateTimeOffset now)
    {
        var nextSweep = Volatile.Read(ref _nextSweepTicks);
        if (now.UtcTicks < nextSweep ||
            Interlocked.CompareExchange(ref _nextSweepTicks, now.UtcTicks + SweepInterval.Ticks, nextSweep) != nextSweep)
        {
            return;
        }

        foreach (var entry in _entries)
        {
            if (!entry.Value.IsActiveAt(now))
            {
                // Removes only if unchanged, so a concurrent extension survives the sweep.
                if (_entries.TryRemove(entry))
                {
                    Interlocked.Decrement(ref _count);
                }
            }
        }
    }
}
