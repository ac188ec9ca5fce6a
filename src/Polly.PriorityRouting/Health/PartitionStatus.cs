namespace Polly.PriorityRouting;

/// <summary>
/// A throttle partition of one backend (for example one Azure OpenAI deployment) that is out of rotation while the
/// backend itself may still serve other partitions.
/// </summary>
public sealed class PartitionStatus
{
    internal PartitionStatus(string partition, BackendUnavailability unavailability, DateTimeOffset now)
    {
        Partition = partition;
        UnavailableUntil = unavailability.Until;
        Reason = unavailability.Reason;
        TimeUntilAvailable = unavailability.Until - now;
    }

    /// <summary>Gets the partition, as the partition function returned it.</summary>
    public string Partition { get; }

    /// <summary>Gets the moment the partition returns to rotation on this backend.</summary>
    public DateTimeOffset UnavailableUntil { get; }

    /// <summary>Gets why the partition is out of rotation on this backend.</summary>
    public BackendUnavailableReason Reason { get; }

    /// <summary>Gets the time until the partition returns to rotation on this backend.</summary>
    public TimeSpan TimeUntilAvailable { get; }

    /// <summary>Describes the state, for logs and health reports.</summary>
    /// <returns>For example <c>gpt-4o: Throttled for 2.5 s</c>.</returns>
    public override string ToString() => FormattableString.Invariant($"{Partition}: {Reason} for {TimeUntilAvailable.TotalSeconds:0.###} s");
}
