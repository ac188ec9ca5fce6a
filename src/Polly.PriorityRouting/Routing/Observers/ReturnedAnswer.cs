namespace Polly.PriorityRouting;

/// <summary>An answer that the predicate lets go back to the caller, with the attempt that produced it.</summary>
internal readonly struct ReturnedAnswer(
    ResilienceContext context,
    HttpResponseMessage response,
    BackendLease lease,
    HttpMethod method,
    long started,
    int attempt,
    RequestRoute route,
    AffinityDecision affinity)
{
    public ResilienceContext Context { get; } = context;

    public HttpResponseMessage Response { get; } = response;

    /// <summary>Gets the attempt's admission to its backend.</summary>
    public BackendLease Lease { get; } = lease;

    /// <summary>Gets the caller's method (a HEAD's answer has no body).</summary>
    public HttpMethod Method { get; } = method;

    /// <summary>Gets the timestamp at which the attempt started.</summary>
    public long Started { get; } = started;

    /// <summary>Gets the 0-based attempt number.</summary>
    public int Attempt { get; } = attempt;

    public RequestRoute Route { get; } = route;

    public AffinityDecision Affinity { get; } = affinity;
}
