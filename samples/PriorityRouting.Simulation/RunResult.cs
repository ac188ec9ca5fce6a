namespace PriorityRouting.Simulation;

/// <summary>
/// What one router achieved in one scenario at one offered load with one number of replicas, counted over the measured
/// window. Capacity and served amounts are in the scenario's unit (requests, or tokens); <see cref="AdmittedUnits"/> is
/// what every backend admitted inside the window, the answers nobody used (hedging's losing copies) included.
/// </summary>
public sealed record RunResult(
    string Router,
    string Scenario,
    double LoadFactor,
    int Replicas,
    int ClientRetries,
    double MeasuredSeconds,
    double AggregateCapacity,
    double PriorityOneCapacity,
    long NewRequests,
    long Successes,
    long ServedUnits,
    long BackendThrottled,
    long ClientVisibleRejections,
    long PriorityOneUnits,
    long Retries,
    long RetriesServed,
    double P50TimeToSuccessMs,
    double P99TimeToSuccessMs,
    double PriorityOneUtilisationWhileSpilling,
    bool HasClasses = false,
    long ForegroundRequests = 0,
    long ForegroundSuccesses = 0,
    long BackgroundRequests = 0,
    long BackgroundSuccesses = 0,
    double ForegroundP99TimeToSuccessMs = double.NaN,
    long AdmittedUnits = 0)
{
    /// <summary>
    /// Gets the units served as a fraction of the backends' capacity over the measured window: an answer counts when its
    /// backend admitted the request inside the window (when it counted the tokens), not when it arrived. It can exceed 1
    /// by what the buckets held when the window began (at most one refill period's worth each).
    /// </summary>
    public double ServedFraction => ServedUnits / (AggregateCapacity * MeasuredSeconds);

    /// <summary>Gets the 429 answers the backends sent, per successful request.</summary>
    public double ThrottledPerSuccess => Successes == 0 ? double.NaN : (double)BackendThrottled / Successes;

    /// <summary>Gets the 429/503 answers (or exceptions) that reached the caller's retry, per new request.</summary>
    public double ClientVisibleRejectionsPerRequest => NewRequests == 0 ? 0 : (double)ClientVisibleRejections / NewRequests;

    /// <summary>
    /// Gets the fewest client-visible rejections per request any router could give: every unserved request is rejected
    /// once per try, (retries + 1) times.
    /// </summary>
    public double ClientVisibleRejectionsFloor => NewRequests == 0 ? 0 : (ClientRetries + 1) * Math.Max(0, 1 - ((double)Successes / NewRequests));

    /// <summary>Gets the share of the retries (sent after a rejection said when) that were served.</summary>
    public double KeptPromiseRate => Retries == 0 ? double.NaN : (double)RetriesServed / Retries;

    /// <summary>
    /// Gets the highest kept-promise rate any router with bounded waits can reach against callers that retry
    /// <see cref="ClientRetries"/> (R) times whatever they are told: with u = 1 − 1/load the share that cannot be served,
    /// (1 − u) / ((1 − u) + R·u); 1 at a load of 1 or less.
    /// </summary>
    public double KeptPromiseBound => KeptPromise.Bound(LoadFactor, ClientRetries);

    /// <summary>
    /// Gets the served share of an ideal priority router on the same arrivals (<see cref="IdealService"/>, the reserved
    /// capacity first): exact knowledge, callers that wait as long as it takes. What it leaves unserved, no router that
    /// spends the best priority first can serve; <see cref="double.NaN"/> when not computed.
    /// </summary>
    public double IdealServedShare { get; init; } = double.NaN;

    /// <summary>
    /// Gets the served share of an ideal router that spends whatever capacity is lost soonest first, whatever its
    /// priority (<see cref="IdealOrder.SoonestLostFirst"/>): the most any router could serve of the same arrivals.
    /// </summary>
    public double IdealAnyOrderServedShare { get; init; } = double.NaN;

    /// <summary>Gets the share of foreground requests served (by cohort); NaN without request classes.</summary>
    public double ForegroundServedShare => HasClasses && ForegroundRequests > 0 ? (double)ForegroundSuccesses / ForegroundRequests : double.NaN;

    /// <summary>Gets the share of background requests served (by cohort); NaN without request classes.</summary>
    public double BackgroundServedShare => HasClasses && BackgroundRequests > 0 ? (double)BackgroundSuccesses / BackgroundRequests : double.NaN;

    /// <summary>Gets the share of the priority-1 backend's capacity that was used over the whole measured window.</summary>
    public double PriorityOneUtilisation => PriorityOneUnits / (PriorityOneCapacity * MeasuredSeconds);
}
