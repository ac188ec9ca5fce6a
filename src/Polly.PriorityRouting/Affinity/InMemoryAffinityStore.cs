using System.Runtime.CompilerServices;

namespace Polly.PriorityRouting;

/// <summary>
/// A process-wide, thread-safe <see cref="IAffinityStore"/> kept in memory: id pins bounded by <see cref="Capacity"/>,
/// soft-affinity keys bounded apart by <see cref="StickyCapacity"/>.
/// </summary>
/// <remarks>
/// <para>
/// Ids and soft-affinity keys never compete for room: soft keys come from callers (<c>user</c>,
/// <c>prompt_cache_key</c>), and however many distinct ones arrive they can evict only each other, never the pin of a
/// stored response or a file.
/// </para>
/// <para>
/// Expired entries are ignored by readers and swept when a new one finds its space full; when a space is still full of
/// live entries, the tenth of them closest to expiry is evicted, so that a new entry is always kept (for soft keys,
/// whose lifetime slides, those idle longest). A request whose id was evicted is routed normally (as on a replica that
/// has never seen the id); a soft key that was evicted only loses its preference.
/// </para>
/// </remarks>
public sealed class InMemoryAffinityStore : IAffinityStore
{
    /// <summary>The default <see cref="Capacity"/>.</summary>
    public const int DefaultCapacity = 100_000;

    /// <summary>
    /// The default <see cref="StickyCapacity"/>: at the default 10-minute <see cref="AffinityOptions.StickyLifetime"/>,
    /// about 80 new keys a second before the keys idle longest lose their preference.
    /// </summary>
    public const int DefaultStickyCapacity = 50_000;

    // The default store of pipelines on clocks other than the system's (a test's fake one): one per clock, collected with it.
    private static readonly ConditionalWeakTable<TimeProvider, InMemoryAffinityStore> SharedByClock = new();

    private readonly PinTable _ids;
    private readonly PinTable _stickyKeys;
    private readonly TimeProvider _timeProvider;

    /// <summary>
    /// Initializes a new instance of the <see cref="InMemoryAffinityStore"/> class holding at most
    /// <see cref="DefaultCapacity"/> ids and <see cref="DefaultStickyCapacity"/> soft-affinity keys.
    /// </summary>
    public InMemoryAffinityStore()
        : this(DefaultCapacity, DefaultStickyCapacity, TimeProvider.System)
    {
    }

    /// <summary>
    /// Initializes a new instance of the <see cref="InMemoryAffinityStore"/> class holding at most
    /// <paramref name="capacity"/> ids and as many soft-affinity keys.
    /// </summary>
    /// <param name="capacity">The most ids held, at least 1; also the most soft-affinity keys held.</param>
    /// <param name="timeProvider">The clock that expires pins.</param>
    public InMemoryAffinityStore(int capacity, TimeProvider timeProvider)
        : this(capacity, capacity, timeProvider)
    {
    }

    /// <summary>
    /// Initializes a new instance of the <see cref="InMemoryAffinityStore"/> class.
    /// </summary>
    /// <param name="capacity">The most ids held, at least 1.</param>
    /// <param name="stickyCapacity">The most soft-affinity keys held, at least 1.</param>
    /// <param name="timeProvider">The clock that expires pins.</param>
    public InMemoryAffinityStore(int capacity, int stickyCapacity, TimeProvider timeProvider)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(stickyCapacity, 1);
        ArgumentNullException.ThrowIfNull(timeProvider);
        _ids = new PinTable(capacity);
        _stickyKeys = new PinTable(stickyCapacity);
        _timeProvider = timeProvider;
    }

    /// <summary>
    /// Gets the store shared by every pipeline of the process that does not configure its own and runs on the system
    /// clock (a pipeline on another <see cref="TimeProvider"/> shares one with the pipelines on that clock).
    /// </summary>
    public static InMemoryAffinityStore Shared { get; } = new();

    /// <summary>
    /// Returns the store of the pipelines on <paramref name="timeProvider"/> that configure none: <see cref="Shared"/> on
    /// the system clock, else one per clock, which expires its pins on that clock. Pins are relative to a clock: on a
    /// fake one (a test's) they must neither outlive their lifetime nor steer the pipelines of another test.
    /// </summary>
    internal static InMemoryAffinityStore SharedOn(TimeProvider timeProvider)
        => timeProvider == TimeProvider.System
            ? Shared
            : SharedByClock.GetValue(timeProvider, static clock => new InMemoryAffinityStore(DefaultCapacity, DefaultStickyCapacity, clock));

    /// <summary>Gets the most ids the store holds.</summary>
    public int Capacity => _ids.Capacity;

    /// <summary>Gets the most soft-affinity keys the store holds, apart from ids.</summary>
    public int StickyCapacity => _stickyKeys.Capacity;

    /// <summary>Gets the number of ids held, expired or not.</summary>
    public int Count => _ids.Count;

    /// <summary>Gets the number of soft-affinity keys held, expired or not.</summary>
    public int StickyCount => _stickyKeys.Count;

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
        return _ids.TryFind(id, _timeProvider.GetUtcNow(), out backend);
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
        _ids.Pin(id, backend, now + timeToLive, now);
    }

    /// <inheritdoc/>
    public ValueTask RemoveAsync(string id, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(id);
        _ids.Remove(id);
        return default;
    }

    /// <inheritdoc/>
    public ValueTask<string?> FindStickyAsync(string key, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        return new(_stickyKeys.TryFind(key, _timeProvider.GetUtcNow(), out var backend) ? backend : null);
    }

    /// <inheritdoc/>
    public ValueTask PinStickyAsync(string key, string backend, TimeSpan timeToLive, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(backend);
        var now = _timeProvider.GetUtcNow();
        _stickyKeys.Pin(key, backend, now + timeToLive, now);
        return default;
    }
}
