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
    AffinityDecision affinity,
    ModelRequest? model,
    bool canMoveToLargerModel)
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

    /// <summary>Gets the request's logical model, or <see langword="null"/> when it names none or the pipeline maps no models.</summary>
    public ModelRequest? Model { get; } = model;

    /// <summary>Gets the logical model that served the answer: the requested one or a fallback; <see langword="null"/> without a model.</summary>
    public string? ServedModel => Route.Model?.Name ?? Model?.Name;

    /// <summary>Gets a value indicating whether a context-length answer would move the request to a larger model.</summary>
    public bool CanMoveToLargerModel { get; } = canMoveToLargerModel;
}
