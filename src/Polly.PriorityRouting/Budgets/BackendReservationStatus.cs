namespace Polly.PriorityRouting;

/// <summary>What an <see cref="IBackendReservationStore"/> answered to a reservation.</summary>
public enum BackendReservationStatus
{
    /// <summary>
    /// The store has no verdict: it knows nothing of the budget yet (no answer reported it), or it failed or did not
    /// answer in time. The process's own budget view decides (fail open).
    /// </summary>
    Unknown = 0,

    /// <summary>The cost fits the shared budget and was taken from it.</summary>
    Granted,

    /// <summary>
    /// The cost does not fit the shared budget (less the headroom asked for): nothing was taken, and the backend is
    /// skipped for this request until <see cref="BackendReservation.RetryAfter"/>.
    /// </summary>
    Refused,
}
