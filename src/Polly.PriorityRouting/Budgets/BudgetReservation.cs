namespace Polly.PriorityRouting;

/// <summary>
/// Room promised to one caller in a backend's (or partition's) refill by <see cref="BackendBudget.Promise"/>: the key, the
/// request's cost, and the moment the refill comes; the backend's name is for telemetry; the request's
/// <see cref="RequestRoute.Headroom"/> (its class). A caller waiting in the strategy holds it until it is admitted.
/// </summary>
internal readonly record struct BudgetReservation(BackendStateKey Key, long Cost, DateTimeOffset DueAt, string BackendName, double Headroom = 0)
{
    /// <summary>Gets a value indicating whether the room was promised to a background request.</summary>
    public bool IsBackground => Headroom > 0;
}
