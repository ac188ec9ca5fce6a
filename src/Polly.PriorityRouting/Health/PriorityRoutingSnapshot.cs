namespace Polly.PriorityRouting;

/// <summary>
/// A read-only view of which backends — and which throttle partitions of them — are in rotation, and, for those that
/// are not, until when and why.
/// </summary>
public sealed class PriorityRoutingSnapshot
{
    private PriorityRoutingSnapshot(
        DateTimeOffset takenAt,
        IReadOnlyList<BackendStatus> backends,
        IReadOnlyList<ModelAvailability> models,
        IReadOnlyList<string>? rejectedReload)
    {
        TakenAt = takenAt;
        Backends = backends;
        RejectedReload = rejectedReload ?? [];
        Partitions = [.. backends.SelectMany(backend => backend.Partitions).Select(status => status.Partition).Distinct(StringComparer.Ordinal)];
        Models = models;
    }

    /// <summary>
    /// Gets, when backends have model maps, each configured model as its own backends see it: a model's throttles are
    /// kept under each backend's own deployment name, so only the backends that serve it can say whether it is served.
    /// </summary>
    internal IReadOnlyList<ModelAvailability> Models { get; }

    /// <summary>Gets the moment the snapshot was taken.</summary>
    public DateTimeOffset TakenAt { get; }

    /// <summary>Gets the backends, best tier first, in configured order within a tier.</summary>
    public IReadOnlyList<BackendStatus> Backends { get; }

    /// <summary>
    /// Gets why the latest reload of the configuration was rejected (the validation errors, each naming its field), or
    /// an empty list when the configuration in use is the latest. After a rejection, routing — and this snapshot — keep
    /// the last good configuration.
    /// </summary>
    public IReadOnlyList<string> RejectedReload { get; }

    /// <summary>Gets the throttle partitions that are out of rotation on at least one backend.</summary>
    public IReadOnlyList<string> Partitions { get; }

    /// <summary>Gets a value indicating whether at least one backend is in rotation.</summary>
    public bool IsAnyAvailable => Backends.Any(backend => backend.IsAvailable);

    /// <summary>Gets the backends that take new requests (not drained): those the time figures are computed over.</summary>
    private IEnumerable<BackendStatus> InRotation => Backends.Where(backend => !backend.IsDrained);

    /// <summary>Gets a value indicating whether at least one backend of the best (lowest-numbered) tier that is not drained is in rotation.</summary>
    public bool IsTopTierAvailable => TopTier().Any(backend => backend.IsAvailable);

    /// <summary>Gets the time until the soonest backend that is not drained returns to rotation; zero when one is available.</summary>
    public TimeSpan TimeUntilAnyAvailable => InRotation.Select(backend => backend.TimeUntilAvailable).DefaultIfEmpty().Min();

    /// <summary>Returns whether requests of one partition have a backend in rotation.</summary>
    /// <param name="partition">The partition.</param>
    /// <returns><see langword="true"/> when a backend is available for the partition.</returns>
    public bool IsAnyAvailableFor(string partition) => Backends.Any(backend => backend.IsAvailableFor(partition));

    /// <summary>Returns whether requests of one partition have a backend of the best tier in rotation.</summary>
    /// <param name="partition">The partition.</param>
    /// <returns><see langword="true"/> when a backend of the best tier is available for the partition.</returns>
    public bool IsTopTierAvailableFor(string partition) => TopTier().Any(backend => backend.IsAvailableFor(partition));

    /// <summary>Returns the time until requests of one partition have a backend in rotation again.</summary>
    /// <param name="partition">The partition.</param>
    /// <returns>Zero when one is available.</returns>
    public TimeSpan TimeUntilAnyAvailableFor(string partition)
        => InRotation.Select(backend => backend.TimeUntilAvailableFor(partition)).DefaultIfEmpty().Min();

    /// <summary>
    /// Takes a snapshot of a pipeline's backends as its routing sees them.
    /// </summary>
    /// <param name="options">The routing options (backends, cooldown bounds, outlier ejection).</param>
    /// <param name="store">The store that the routing uses.</param>
    /// <param name="now">The current time.</param>
    /// <returns>The snapshot.</returns>
    public static PriorityRoutingSnapshot Create(PriorityRoutingStrategyOptions options, IBackendStateStore store, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(store);
        return Create(options, SharedBackendState.For(store), now);
    }

    /// <summary>A snapshot of no backends: the configuration never validated.</summary>
    internal static PriorityRoutingSnapshot Empty(DateTimeOffset now, IReadOnlyList<string>? rejectedReload)
        => new(now, [], [], rejectedReload);

    /// <summary>Takes a snapshot of a pipeline's backends on the state its store shares.</summary>
    internal static PriorityRoutingSnapshot Create(PriorityRoutingStrategyOptions options, SharedBackendState shared, DateTimeOffset now)
        => From(new BackendPool(options, shared, TimeProvider.System), now);

    /// <summary>Takes a snapshot through the same reads the routing makes (clamped deadlines, partitions).</summary>
    internal static PriorityRoutingSnapshot From(BackendPool pool, DateTimeOffset now, IReadOnlyList<string>? rejectedReload = null)
    {
        var availability = pool.Availability;
        var statuses = pool.Backends.Select(backend =>
        {
            BackendUnavailability? own = availability.TryGetActive(backend.StateKey, now, out var whole) ? whole : null;
            return new BackendStatus(backend.Name, backend.Priority, backend.Weight, backend.Drained, own, PartitionsOf(availability, backend, now), now, backend.InFlight);
        });
        return new PriorityRoutingSnapshot(now, [.. statuses], ModelsOf(pool, now), rejectedReload);
    }

    private static ModelAvailability[] ModelsOf(BackendPool pool, DateTimeOffset now)
    {
        if (pool.Models is not { } catalog)
        {
            return [];
        }

        var models = new List<ModelAvailability>();
        foreach (var name in catalog.Names)
        {
            var route = catalog.RouteOf(name);
            var soonest = TimeSpan.MaxValue;
            var inRotation = route.Backends.Where(backend => !backend.Drained).ToArray();
            var topTier = inRotation.Length > 0 ? inRotation[0].Priority : 0;
            var topTierAvailable = false;
            foreach (var backend in inRotation)
            {
                var remaining = pool.Availability.GetTimeUntilAvailable(backend, now, route.DeploymentOn(backend)?.Name, out _);
                soonest = remaining < soonest ? remaining : soonest;
                topTierAvailable |= backend.Priority == topTier && remaining == TimeSpan.Zero;
            }

            models.Add(new ModelAvailability(name, soonest == TimeSpan.MaxValue ? TimeSpan.Zero : soonest, topTierAvailable));
        }

        return [.. models];
    }

    private static PartitionStatus[] PartitionsOf(BackendAvailability availability, RoutedBackend backend, DateTimeOffset now)
    {
        IReadOnlyList<KeyValuePair<BackendStateKey, BackendUnavailability>> entries;
        try
        {
            entries = availability.Store.GetEntries(backend.StateKey.Backend);
        }
        catch (Exception)
        {
            // A store that cannot list its entries shows no partitions rather than failing a health check.
            return [];
        }

        var partitions = new List<PartitionStatus>();
        foreach (var entry in entries)
        {
            if (entry.Key.Partition is { } partition && availability.TryGetActive(entry.Key, now, out var state))
            {
                partitions.Add(new PartitionStatus(partition, state, now));
            }
        }

        return [.. partitions.OrderBy(status => status.Partition, StringComparer.Ordinal)];
    }

    /// <summary>Returns the best tier of the backends that take new requests.</summary>
    private IEnumerable<BackendStatus> TopTier()
        => InRotation.FirstOrDefault() is { } best ? InRotation.Where(backend => backend.Priority == best.Priority) : [];

    /// <summary>Gets the best tier of the backends that take new requests; 0 when every backend is drained.</summary>
    internal int TopTierPriority => InRotation.FirstOrDefault()?.Priority ?? 0;
}
