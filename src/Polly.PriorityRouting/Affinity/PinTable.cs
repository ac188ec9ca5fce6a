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

    public PinTable(int capacity) => Capacity = capacity;

    public int Capacity { get; }

    public int Count => _entries.Count;

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
        if (_entries.Count >= Capacity && !_entries.ContainsKey(key))
        {
            MakeRoom(now);
        }

        _entries[key] = new Entry(backend, expiresAt);
    }

    public void Remove(string key) => _entries.TryRemove(key, out _);

    private void MakeRoom(DateTimeOffset now)
    {
        lock (_evictionLock)
        {
            if (_entries.Count < Capacity)
            {
                return;
            }

            foreach (var entry in _entries)
            {
                if (entry.Value.ExpiresAt <= now)
                {
                    _entries.TryRemove(entry);
                }
            }

            var excess = _entries.Count - Capacity + 1;
            if (excess <= 0)
            {
                return;
            }

            var evict = Math.Max(excess, Capacity / 10);
            foreach (var entry in _entries.OrderBy(entry => entry.Value.ExpiresAt).Take(evict).ToList())
            {
                _entries.TryRemove(entry);
            }
        }
    }

    private readonly record struct Entry(string Backend, DateTimeOffset ExpiresAt);
}
