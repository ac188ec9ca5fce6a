namespace Polly.PriorityRouting;

/// <summary>
/// What recording an outcome did to a backend: out of rotation or not, why, for how long, and whether this was news.
/// </summary>
internal readonly struct BackendVerdict
{
    public BackendVerdict(
        BackendUnavailableReason reason,
        BackendUnavailableReason cause,
        TimeSpan cooldown,
        bool leftRotation,
        int ejections,
        Exception? storeError)
    {
        Reason = reason;
        Cause = cause;
        Cooldown = cooldown;
        LeftRotation = leftRotation;
        Ejections = ejections;
        StoreError = storeError;
    }

    public BackendUnavailableReason Reason { get; }

    /// <summary>Gets what the outcome itself was: the same as <see cref="Reason"/>, unless the backend was ejected.</summary>
    public BackendUnavailableReason Cause { get; }

    /// <summary>Gets how long the backend (or the request's partition of it) is out of rotation.</summary>
    public TimeSpan Cooldown { get; }

    /// <summary>Gets a value indicating whether the backend was in rotation until now (else this renewed a mark).</summary>
    public bool LeftRotation { get; }

    /// <summary>Gets the ejections in a row when this outcome ejected the backend; 0 otherwise.</summary>
    public int Ejections { get; }

    /// <summary>Gets the store's failure to record the mark, if it failed (the request is not affected).</summary>
    public Exception? StoreError { get; }
}
