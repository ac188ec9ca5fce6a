namespace Polly.PriorityRouting.Redis;

/// <summary>
/// The replica's own copy of the shared state, which every read is served from: the replica's own marks as they are,
/// and deadlines learned from elsewhere as a time remaining, set on this replica's clock and bounded by
/// <see cref="PriorityRoutingRedisStoreOptions.MaxUnavailability"/>.
/// </summary>
internal sealed class LocalMirror
{
    // A deadline crosses the network in whole milliseconds, rounded up on each side: one read again ends this much
    // later at most.
    private static readonly TimeSpan SameMarkSlack = TimeSpan.FromMilliseconds(10);

    private readonly InMemoryBackendStateStore _entries = new();
    private readonly TimeProvider _timeProvider;

    public LocalMirror(TimeProvider timeProvider, TimeSpan maxUnavailability)
    {
        _timeProvider = timeProvider;
        MaxMilliseconds = ToWholeMilliseconds(maxUnavailability);
    }

    /// <summary>Gets the longest time a deadline from elsewhere is held, and the longest one written to Redis.</summary>
    public long MaxMilliseconds { get; }

    public DateTimeOffset Now => _timeProvider.GetUtcNow();

    public bool TryGetUnavailability(BackendStateKey key, out BackendUnavailability unavailability)
        => _entries.TryGetUnavailability(key, out unavailability);

    public IReadOnlyList<KeyValuePair<BackendStateKey, BackendUnavailability>> GetEntries(string backend)
        => _entries.GetEntries(backend);

    /// <summary>Keeps a mark of this replica's own pipelines, as it is (the pipelines bound their own cooldowns).</summary>
    public void MarkOwn(BackendStateKey key, BackendUnavailability unavailability, DateTimeOffset now)
        => _entries.Mark(key, unavailability, now);

    /// <summary>
    /// Keeps a deadline learned from a peer's message, a load or the script's answer: at most the maximum from now,
    /// marked now (deadlines cross the network as a time remaining, so when this replica learned it is when it was made).
    /// </summary>
    public void Adopt(BackendStateKey key, long remainingMilliseconds, BackendUnavailableReason reason)
    {
        if (remainingMilliseconds <= 0)
        {
            return;
        }

        var now = Now;
        _entries.Mark(key, new BackendUnavailability(now.AddMilliseconds(Math.Min(remainingMilliseconds, MaxMilliseconds)), reason, now), now);
    }

    /// <summary>
    /// Keeps a deadline read by a load (at start, or after a reconnect): the mark the mirror already holds, loaded again,
    /// is left as it is — learned when it was first learned — so that a reconnect does not restart the clamp pipelines
    /// count from <see cref="BackendUnavailability.MarkedAt"/> (a peer's far deadline would hold the backend out again),
    /// nor lengthen a key Redis holds beyond the maximum. A deadline that ends later is a new mark, adopted.
    /// </summary>
    public void AdoptLoaded(BackendStateKey key, long remainingMilliseconds, BackendUnavailableReason reason)
    {
        var now = Now;
        if (_entries.TryGetUnavailability(key, out var held) && held.IsActiveAt(now) &&
            (remainingMilliseconds > MaxMilliseconds
                ? held.Until - held.MarkedAt >= TimeSpan.FromMilliseconds(MaxMilliseconds) // a far mark, held at the maximum
                : now.AddMilliseconds(remainingMilliseconds) <= held.Until + SameMarkSlack))
        {
            return;
        }

        Adopt(key, remainingMilliseconds, reason);
    }

    /// <summary>
    /// Returns the time to share for a deadline of this replica: whole milliseconds rounded up, at most the maximum.
    /// </summary>
    public long ToSharedMilliseconds(TimeSpan remaining) => Math.Min(ToWholeMilliseconds(remaining), MaxMilliseconds);

    private static long ToWholeMilliseconds(TimeSpan remaining) => Math.Max(1, (long)Math.Ceiling(remaining.TotalMilliseconds));
}
