namespace PriorityRouting.Simulation;

/// <summary>
/// What one router achieved at one offered load with one number of replicas, counted over the measured window.
/// </summary>
public sealed record RunResult(
    string Router,
    double LoadFactor,
    int Replicas,
    double MeasuredSeconds,
    double AggregateCapacity,
    double PriorityOneCapacity,
    long NewRequests,
    long Successes,
    long BackendThrottled,
    long ClientVisibleRejections,
    long PriorityOneSuccesses)
{
    /// <summary>Gets the successes per second as a fraction of what the backends can serve at most.</summary>
    public double ServedFraction => Successes / (AggregateCapacity * MeasuredSeconds);

    /// <summary>Gets the 429 answers the backends sent, per successful request.</summary>
    public double ThrottledPerSuccess => Successes == 0 ? double.NaN : (double)BackendThrottled / Successes;

    /// <summary>Gets the 429/503 answers (or exceptions) that reached the caller's retry, per new request.</summary>
    public double ClientVisibleRejectionsPerRequest => NewRequests == 0 ? 0 : (double)ClientVisibleRejections / NewRequests;

    /// <summary>Gets the share of the priority-1 backend's capacity that was used.</summary>
    public double PriorityOneUtilisation => PriorityOneSuccesses / (PriorityOneCapacity * MeasuredSeconds);
}
