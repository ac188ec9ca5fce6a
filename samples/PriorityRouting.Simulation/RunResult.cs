namespace PriorityRouting.Simulation;

/// <summary>
/// What one router achieved in one scenario at one offered load with one number of replicas, counted over the measured
/// window. Capacity and served amounts are in the scenario's unit (requests, or tokens).
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
    double PriorityOneUtilisationWhileSpilling)
{
    /// <summary>Gets the units served as a fraction of what the backends can serve at most.</summary>
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

    /// <summary>Gets the share of the priority-1 backend's capacity that was used over the whole measured window.</summary>
    public double PriorityOneUtilisation => PriorityOneUnits / (PriorityOneCapacity * MeasuredSeconds);
}
