namespace Polly.PriorityRouting;

/// <summary>
/// The state of one backend at the moment a <see cref="PriorityRoutingSnapshot"/> was taken: its own, and that of each
/// of its throttle partitions that is out of rotation.
/// </summary>
public sealed class BackendStatus
{
    internal BackendStatus(
        string name,
        int priority,
        int weight,
        bool drained,
        BackendUnavailability? unavailability,
        IReadOnlyList<PartitionStatus> partitions,
        DateTimeOffset now,
        InFlightLimit? inFlight = null)
    {
        Name = name;
        InFlight = inFlight?.InFlight ?? 0;
        MaxConcurrentRequests = inFlight?.Cap;
        Priority = priority;
        Weight = weight;
        IsDrained = drained;
        Partitions = partitions;
        if (unavailability is { } state && state.IsActiveAt(now))
        {
            UnavailableUntil = state.Until;
            Reason = state.Reason;
            TimeUntilAvailable = state.Until - now;
        }
    }

    /// <summary>Gets the backend's name.</summary>
    public string Name { get; }

    /// <summary>Gets the backend's priority tier.</summary>
    public int Priority { get; }

    /// <summary>Gets the backend's weight within its tier.</summary>
    public int Weight { get; }

    /// <summary>
    /// Gets the requests in flight from this process to the backend, counted until their response body ends, when it has
    /// a cap; 0 otherwise (requests to a backend without a cap are not counted).
    /// </summary>
    public int InFlight { get; }

    /// <summary>Gets the backend's cap on requests in flight (<see cref="PriorityBackend.MaxConcurrentRequests"/>), or <see langword="null"/>.</summary>
    public int? MaxConcurrentRequests { get; }

    /// <summary>
    /// Gets a value indicating whether the backend is drained (<see cref="PriorityBackend.Drain"/>): it takes only
    /// requests pinned to it, and no snapshot or health figure counts it as available.
    /// </summary>
    public bool IsDrained { get; }

    /// <summary>Gets a value indicating whether the backend as a whole is in rotation: not drained, and not marked unavailable.</summary>
    public bool IsAvailable => !IsDrained && UnavailableUntil is null;

    /// <summary>Gets the moment the backend returns to rotation, or <see langword="null"/> when it is available.</summary>
    public DateTimeOffset? UnavailableUntil { get; }

    /// <summary>Gets why the backend is out of rotation, or <see langword="null"/> when it is available.</summary>
    public BackendUnavailableReason? Reason { get; }

    /// <summary>Gets the time until the backend's mark ends; zero when it has none. A drained backend never returns by time.</summary>
    public TimeSpan TimeUntilAvailable { get; }

    /// <summary>Gets the throttle partitions of this backend that are out of rotation while the backend may not be.</summary>
    public IReadOnlyList<PartitionStatus> Partitions { get; }

    /// <summary>Returns whether requests of one partition can go to this backend: it is available and so is the partition.</summary>
    /// <param name="partition">The partition.</param>
    /// <returns><see langword="true"/> when neither the backend nor the partition is out of rotation.</returns>
    public bool IsAvailableFor(string partition) => !IsDrained && TimeUntilAvailableFor(partition) == TimeSpan.Zero;

    /// <summary>Returns the time until requests of one partition can go to this backend again.</summary>
    /// <param name="partition">The partition.</param>
    /// <returns>The later of the backend's and the partition's time; zero when both are available.</returns>
    public TimeSpan TimeUntilAvailableFor(string partition)
    {
        var remaining = TimeUntilAvailable;
        foreach (var status in Partitions)
        {
            if (string.Equals(status.Partition, partition, StringComparison.Ordinal) && status.TimeUntilAvailable > remaining)
            {
                remaining = status.TimeUntilAvailable;
            }
        }

        return remaining;
    }

    /// <summary>Describes the state, for logs and health reports. Never shows headers or addresses.</summary>
    /// <returns>For example <c>ptu (priority 1): available; gpt-4o: Throttled for 2.5 s</c>, or <c>ptu (priority 1): drained; available</c>.</returns>
    public override string ToString()
    {
        var drained = IsDrained ? "drained; " : string.Empty;
        var own = UnavailableUntil is null
            ? $"{Name} (priority {Priority}): {drained}available"
            : FormattableString.Invariant($"{Name} (priority {Priority}): {drained}{Reason} for {TimeUntilAvailable.TotalSeconds:0.###} s");
        return Partitions.Count == 0 ? own : own + "; " + string.Join("; ", Partitions);
    }
}
