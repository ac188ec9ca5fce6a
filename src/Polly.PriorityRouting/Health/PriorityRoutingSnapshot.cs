namespace Polly.PriorityRouting;

/// <summary>
/// A read-only view of which backends are in rotation, and, for those that are not, until when and why.
/// </summary>
public sealed class PriorityRoutingSnapshot
{
    private PriorityRoutingSnapshot(DateTimeOffset takenAt, IReadOnlyList<BackendStatus> backends)
    {
        TakenAt = takenAt;
        Backends = backends;
    }

    /// <summary>Gets the moment the snapshot was taken.</summary>
    public DateTimeOffset TakenAt { get; }

    /// <summary>Gets the backends, best tier first, in configured order within a tier.</summary>
    public IReadOnlyList<BackendStatus> Backends { get; }

    /// <summary>Gets a value indicating whether at least one backend is in rotation.</summary>
    public bool IsAnyAvailable => Backends.Any(backend => backend.IsAvailable);

    /// <summary>Gets a value indicating whether at least one backend of the best (lowest-numbered) tier is in rotation.</summary>
    public bool IsTopTierAvailable
        => Backends.Count > 0 && Backends.Where(backend => backend.Priority == Backends[0].Priority).Any(backend => backend.IsAvailable);

    /// <summary>Gets the time until the soonest backend returns to rotation; zero when one is available.</summary>
    public TimeSpan TimeUntilAnyAvailable => Backends.Count == 0 ? TimeSpan.Zero : Backends.Min(backend => backend.TimeUntilAvailable);

    /// <summary>
    /// Takes a snapshot of the given backends from a store.
    /// </summary>
    /// <param name="backends">The backends, as configured.</param>
    /// <param name="store">The store that the routing uses.</param>
    /// <param name="now">The current time.</param>
    /// <returns>The snapshot.</returns>
    public static PriorityRoutingSnapshot Create(IEnumerable<PriorityBackend> backends, IBackendStateStore store, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(backends);
        ArgumentNullException.ThrowIfNull(store);

        var statuses = backends
            .Where(backend => backend?.GetEffectiveName() is not null)
            .OrderBy(backend => backend.Priority)
            .Select(backend =>
            {
                var name = backend.GetEffectiveName()!;
                BackendUnavailability? state = store.TryGetUnavailability(name, out var unavailability) ? unavailability : null;
                return new BackendStatus(name, backend.Priority, backend.Weight, state, now);
            })
            .ToArray();
        return new PriorityRoutingSnapshot(now, statuses);
    }
}
