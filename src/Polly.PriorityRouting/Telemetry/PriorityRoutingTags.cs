namespace Polly.PriorityRouting;

/// <summary>
/// Tag names of the <c>Polly.PriorityRouting</c> instruments; pipeline and strategy tags match Polly's own metrics.
/// </summary>
internal static class PriorityRoutingTags
{
    public const string PipelineName = "pipeline.name";

    public const string PipelineInstance = "pipeline.instance";

    public const string StrategyName = "strategy.name";

    public const string BackendName = "backend.name";

    public const string BackendPriority = "backend.priority";

    public const string Outcome = "outcome";

    public const string Reason = "reason";

    public const string Partition = "partition";

    /// <summary>The logical model name of a model map (a configured name: bounded).</summary>
    public const string Model = "model";

    public const string StatusCode = "http.response.status_code";

    /// <summary>
    /// The class of a request marked <see cref="PriorityRoutingHints.Background"/> (with a non-zero
    /// <see cref="PriorityRoutingStrategyOptions.BackgroundHeadroom"/>): <see cref="BackgroundClass"/>. Foreground
    /// measurements carry no such tag, as before classes existed.
    /// </summary>
    public const string RequestClass = "request.class";

    /// <summary>
    /// On a shared reservation's refusal that set room aside for the caller in a later refill (a claim): <c>true</c>.
    /// Other refusals carry no such tag.
    /// </summary>
    public const string ReservationClaimed = "reservation.claimed";

    /// <summary>The <see cref="RequestClass"/> of a background request.</summary>
    public const string BackgroundClass = "background";

    /// <summary>Outcome of an attempt that went back to the caller (not handled): success or any other answer.</summary>
    public const string ReturnedOutcome = "returned";

    /// <summary>Outcome of an attempt answered "context_length_exceeded" that moved the request to a larger model.</summary>
    public const string ContextLengthExceededOutcome = "context_length_exceeded";

    /// <summary>Outcome of an attempt the caller cancelled: it says nothing about the backend.</summary>
    public const string CanceledOutcome = "canceled";

    /// <summary>Outcome of a queued wait whose promised refill came: the request tried again.</summary>
    public const string ReleasedOutcome = "released";

    /// <summary>Reason of a broken stream: a read failed with the transport's exception.</summary>
    public const string AbortedStream = "aborted";

    /// <summary>Reason of a broken stream: a read waited longer than the stall timeout.</summary>
    public const string StalledStream = "stalled";

    public static string ToTagValue(BackendUnavailableReason reason) => reason switch
    {
        BackendUnavailableReason.Throttled => "throttled",
        BackendUnavailableReason.ServerError => "server_error",
        BackendUnavailableReason.TransportError => "transport_error",
        BackendUnavailableReason.Timeout => "timeout",
        BackendUnavailableReason.Ejected => "ejected",
        _ => "other",
    };
}
