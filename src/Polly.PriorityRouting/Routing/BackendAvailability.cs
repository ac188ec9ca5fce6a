namespace Polly.PriorityRouting;

/// <summary>
/// Answers "is this backend in rotation for this request, and if not, for how long": reads the store (the whole
/// backend's entry and the request's partition's), clamps what it reads, and asks the health tracker about probes.
/// The one place that turns stored state into availability — for routing, the exhausted answer, snapshots and gauges.
/// </summary>
/// <remarks>
/// Reads never lock, never allocate and never throw: a store that fails to answer counts as "nothing marked".
/// </remarks>
internal sealed class BackendAvailability
{
    private readonly BackendHealthTracker? _tracker;
    private readonly TimeSpan _longestCooldown;

    /// <param name="store">The store.</param>
    /// <param name="tracker">The outlier tracker, or <see langword="null"/> when ejection is off.</param>
    /// <param name="longestCooldown">
    /// The longest unavailability this pipeline could itself set: a deadline read further out (another replica, a peer
    /// with a larger <c>MaxCooldown</c>, anyone who can write to the store) counts as ending then.
    /// </param>
    public BackendAvailability(IBackendStateStore store, BackendHealthTracker? tracker, TimeSpan longestCooldown)
    {
        Store = store;
        _tracker = tracker;
        _longestCooldown = longestCooldown;
    }

    public IBackendStateStore Store { get; }

    public TimeSpan LongestCooldown => _longestCooldown;

    /// <summary>
    /// Returns whether a backend may take an attempt now: not marked (as a whole, nor for the request's partition) and
    /// not being probed by another request after an ejection.
    /// </summary>
    public bool IsAvailable(RoutedBackend backend, DateTimeOffset now, string? partition)
        => !TryGetActive(backend.StateKey, now, out _)
           && (partition is null || !TryGetActive(backend.StateKey.ForPartition(partition), now, out _))
           && (_tracker is null || !_tracker.IsProbeInFlight(backend));

    /// <summary>
    /// Returns how long a backend stays out of rotation for a request of <paramref name="partition"/>: the later of its
    /// own and its partition's deadline; <see cref="PriorityRoutingConstants.ProbeRetryDelay"/> while a probe decides
    /// it; zero when it is available.
    /// </summary>
    public TimeSpan GetTimeUntilAvailable(RoutedBackend backend, DateTimeOffset now, string? partition, out bool throttled)
    {
        throttled = false;
        var remaining = TimeSpan.Zero;
        if (TryGetActive(backend.StateKey, now, out var whole))
        {
            remaining = whole.Until - now;
            throttled = whole.Reason == BackendUnavailableReason.Throttled;
        }

        if (partition is not null && TryGetActive(backend.StateKey.ForPartition(partition), now, out var part))
        {
            throttled |= part.Reason == BackendUnavailableReason.Throttled;
            if (part.Until - now > remaining)
            {
                remaining = part.Until - now;
            }
        }

        if (remaining < PriorityRoutingConstants.ProbeRetryDelay && _tracker is not null && _tracker.IsProbeInFlight(backend))
        {
            // The probe's answer decides, whatever shorter mark the backend has: a short, non-zero wait rather than
            // "retry after 0", which makes retries spin.
            remaining = PriorityRoutingConstants.ProbeRetryDelay;
        }

        return remaining;
    }

    /// <summary>
    /// Computes the answer when nothing is left: the time until the soonest backend frees up, and whether any pending
    /// unavailability is a throttle.
    /// </summary>
    public (TimeSpan RetryAfter, bool Throttled) GetExhaustion(IReadOnlyList<RoutedBackend> backends, DateTimeOffset now, string? partition)
        => GetExhaustion(backends, now, new RequestRoute(partition));

    /// <summary>
    /// Computes the answer when nothing is left for a request's route: each backend read for the request's partition
    /// on it (its own deployment, for a mapped model).
    /// </summary>
    public (TimeSpan RetryAfter, bool Throttled) GetExhaustion(IReadOnlyList<RoutedBackend> backends, DateTimeOffset now, RequestRoute route)
    {
        var soonest = TimeSpan.MaxValue;
        var anyThrottled = false;
        foreach (var backend in backends)
        {
            var remaining = GetTimeUntilAvailable(backend, now, route.PartitionOn(backend), out var throttled);
            anyThrottled |= throttled;
            if (remaining < soonest)
            {
                soonest = remaining;
            }
        }

        return (soonest == TimeSpan.MaxValue ? TimeSpan.Zero : soonest, anyThrottled);
    }

    /// <summary>
    /// Reads an entry that is active now, its deadline clamped to <see cref="LongestCooldown"/> from when it was marked.
    /// </summary>
    /// <remarks>
    /// From the mark, not from the read: a clamp from each read would slide, and a far deadline would hold the backend
    /// out for as long as it is read. A mark that does not say when it was made (a store that does not keep it), or
    /// says a moment still to come (another machine's clock), counts from now.
    /// </remarks>
    public bool TryGetActive(BackendStateKey key, DateTimeOffset now, out BackendUnavailability unavailability)
    {
        try
        {
            if (!Store.TryGetUnavailability(key, out unavailability) || !unavailability.IsActiveAt(now))
            {
                return false;
            }
        }
        catch (Exception)
        {
            // A store that cannot answer fails open: the backend counts as available, and its own answer decides.
            unavailability = default;
            return false;
        }

        var markedAt = unavailability.MarkedAt == default || unavailability.MarkedAt > now ? now : unavailability.MarkedAt;
        if (unavailability.Until - markedAt > _longestCooldown)
        {
            unavailability = new BackendUnavailability(markedAt + _longestCooldown, unavailability.Reason, markedAt);
            return unavailability.IsActiveAt(now);
        }

        return true;
    }

    /// <summary>Returns whether a key is marked right now (a new mark is a backend leaving rotation; else a renewal).</summary>
    public bool IsMarked(BackendStateKey key, DateTimeOffset now) => TryGetActive(key, now, out _);
}
