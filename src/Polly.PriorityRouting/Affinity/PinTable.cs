using System.Collections.Concurrent;

namespace Polly.PriorityRouting;

/// <summary>
/// A bounded, thread-safe map of keys to the backend that holds them, each until its expiry.
/// </summary>
/// <remarks>
/// Expired entries are ignored by readers and swept when a new key finds the table full; when it is still full of live
/// entries, the tenth of them closest to expiry is evicted at once (so that the sort is paid once per many keys), and a
/// new key is always kept.
/// </remarks>
internal sealed class PinTable
{
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly object _evictionLock = new();

    // Counted here: ConcurrentDictionary.Count takes every lock of the table, and a pin asks on every write.
    private int _count;

    public PinTable(int capacity) => Capacity = capacity;

    public int Capacity { get; }

    public int Count => Volatile.Read(ref _count);

    public bool TryFind(string key, DateTimeOffset now, out string backend)
    {
        if (_entries.TryGetValue(key, out var entry) && entry.ExpiresAt > now)
        {
            backend = entry.Backend;
            return true;
        }

        backend = string.Empty;
        return false;
    }

    public void Pin(string key, string backend, DateTimeOffset expiresAt, DateTimeOffset now)
    {
        var entry = new Entry(backend, expiresAt);
        while (true)
        {
            if (_entries.TryGetValue(key, out var held))
            {
                if (_entries.TryUpdate(key, entry, held))
                {
                    return;
                }

                continue;
            }

            if (Count >= Capacity)
            {
                MakeRoom(now);
            }

            if (_entries.TryAdd(key, entry))
            {
                Interlocked.Increment(ref _count);
                return;
            }
        }
    }

    public void Remove(string key)
    {
        if (_entries.TryRemove(key, out _))
        {
            Interlocked.Decrement(ref _count);
        }
    }

    private void MakeRoom(DateTimeOffset now)
    {
        lock (_evictionLock)
        {
            if (Count < Capacity)
            {
                return;
            }

            foreach (var entry in _entries)
            {
                if (entry.Value.ExpiresAt <= now)
                {
                    TryRemove(entry);
                }
            }

            var excess = Count - Capacity + 1;
            if (excess <= 0)
            {
                return;
            }

            var evict = Math.Max(excess, Capacity / 10);
            foreach (var entry in _entries.OrderBy(entry => entry.Value.ExpiresAt).Take(evict).ToList())
            {
                TryRemove(entry);
            }
        }
    }

    // Removes only if unchanged: an entry pinned again meanwhile stays.
    private void TryRemove(KeyValuePair<string, Entry> entry)
    {
        if (_entries.TryRemove(entry))
        {
            Interlocked.Decrement(ref _count);
        }
    }

    private readonly record struct Entry(string Backend, DateTimeOffset ExpiresAt);
}
