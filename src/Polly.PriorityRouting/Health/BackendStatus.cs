namespace Polly.PriorityRouting;

/// <summary>
/// The state of one backend at the moment a <see cref="PriorityRoutingSnapshot"/> was taken.
/// </summary>
public sealed class BackendStatus
{
    internal BackendStatus(string name, int priority, int weight, BackendUnavailability? unavailability, DateTimeOffset now)
    {
        Name = name;
        Priority = priority;
        Weight = weight;
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

    /// <summary>Gets a value indicating whether the backend is in rotation.</summary>
    public bool IsAvailable => UnavailableUntil is null;

    /// <summary>Gets the moment the backend returns to rotation, or <see langword="null"/> when it is available.</summary>
    public DateTimeOffset? UnavailableUntil { get; }

    /// <summary>Gets why the backend is out of rotation, or <see langword="null"/> when it is available.</summary>
    public BackendUnavailableReason? Reason { get; }

    /// <summary>Gets the time until the backend returns to rotation; zero when it is available.</summary>
    public TimeSpan TimeUntilAvailable { get; }

    /// <summary>Describes the state, for logs and health reports. Never shows headers or addresses.</summary>
    /// <returns>For example <c>ptu (priority 1): throttled for 2.5 s</c>.</returns>
    public override string ToString()
        => IsAvailable
            ? $"{Name} (priority {Priority}): available"
            : FormattableString.Invariant($"{Name} (priority {Priority}): {Reason} for {TimeUntilAvailable.TotalSeconds:0.###} s");
}
