using System.Collections.Concurrent;

namespace Polly.PriorityRouting;

/// <summary>
/// A process-wide, thread-safe <see cref="IAffinityStore"/> kept in memory, bounded by <see cref="Capacity"/>.
/// </summary>
/// <remarks>
/// Expired pins are ignored by readers and swept when a pin finds the store full; when the store is still full of live
/// pins, the tenth of them closest to expiry is evicted, so that a new pin is always kept. A request whose id was evicted
/// is routed normally (as on a replica that has never seen the id).
/// </remarks>
public sealed class InMemoryAffinityStore : IAffinityStore
{
    /// <summary>The default <see cref="Capacity"/>.</summary>
    public const int DefaultCapacity = 100_000;

    private readonly ConcurrentDictionary<string, Entry> _pins = new(StringComparer.Ordinal);
    private readonly TimeProvider _timeProvider;
    private readonly object _evictionLock = new();

    /// <summary>
    /// Initializes a new instance of the <see cref="InMemoryAffinityStore"/> class holding at most
    /// <see cref="DefaultCapacity"/> pins.
    /// </summary>
    public InMemoryAffinityStore()
        : this(DefaultCapacity, TimeProvider.System)
    {
    }

    /// <summary>
    /// Initializes a new instance of the <see cref="InMemoryAffinityStore"/> class.
    /// </summary>
    /// <param name="capacity">The most pins held, at least 1.</param>
    /// <param name="timeProvider">The clock that expires pins.</param>
    public InMemoryAffinityStore(int capacity, TimeProvider timeProvider)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentNullException.ThrowIfNull(timeProvider);
        Capacity = capacity;
        _timeProvider = timeProvider;
    }

    /// <summary>Gets the store shared by every pipeline of the process that does not configure its own.</summary>
    public static InMemoryAffinityStore Shared { get; } = new();

    /// <summary>Gets the most pins the store holds.</summary>
    public int Capacity { get; }

    /// <summary>Gets the number of pins held, expired or not.</summary>
    public int Count => _pins.Count;

    /// <inheritdoc/>
    public ValueTask<string?> FindAsync(string id, CancellationToken cancellationToken)
        => new(TryFind(id, out var backend) ? backend : null);

    /// <summary>Finds a live pin in memory.</summary>
    /// <param name="id">The id.</param>
    /// <param name="backend">The backend's identity.</param>
    /// <returns><see langword="true"/> when the id is pinned.</returns>
    public bool TryFind(string id, out string backend)
    {
        ArgumentNullException.ThrowIfNull(id);
        if (_pins.TryGetValue(id, out var pin) && pin.ExpiresAt > _timeProvider.GetUtcNow())
        {
            backend = pin.Backend;
            return true;
        }

        backend = string.Empty;
        return false;
    }

    /// <inheritdoc/>
    public ValueTask PinAsync(string id, string backend, TimeSpan timeToLive, CancellationToken cancellationToken)
    {
        Pin(id, backend, timeToLive);
        return default;
    }

    /// <summary>Records a pin in memory.</summary>
    /// <param name="id">The id.</param>
    /// <param name="backend">The backend's identity.</param>
    /// <param name="timeToLive">How long the pin is kept.</param>
    public void Pin(string id, string backend, TimeSpan timeToLive)
    {
        ArgumentNullException.ThrowIfNull(id);
        ArgumentNullException.ThrowIfNull(backend);
        var now = _timeProvider.GetUtcNow();
        if (_pins.Count >= Capacity && !_pins.ContainsKey(id))
        {
            MakeRoom(now);
        }

        _pins[id] = new Entry(backend, now + timeToLive);
    }

    /// <inheritdoc/>
    public ValueTask RemoveAsync(string id, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(id);
        _pins.TryRemove(id, out _);
        return default;
    }

    private void MakeRoom(DateTimeOffset now)
    {
        lock (_evictionLock)
        {
            if (_pins.Count < Capacity)
            {
                return;
            }

            foreach (var pin in _pins)
            {
                if (pin.Value.ExpiresAt <= now)
                {
                    _pins.TryRemove(pin);
                }
            }

            var excess = _pins.Count - Capacity + 1;
            if (excess <= 0)
            {
                return;
            }

            // Rare (a store full of live pins): evict a tenth at once so that the sort is paid once per many pins.
            var evict = Math.Max(excess, Capacity / 10);
            foreach (var pin in _pins.OrderBy(pin => pin.Value.ExpiresAt).Take(evict).ToList())
            {
                _pins.TryRemove(pin);
            }
        }
    }

    private readonly record struct Entry(string Backend, DateTimeOffset ExpiresAt);
}
