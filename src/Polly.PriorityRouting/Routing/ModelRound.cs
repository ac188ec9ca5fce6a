namespace Polly.PriorityRouting;

/// <summary>
/// A request's round on one model of its chain, as the attempt loop sees it: what <see cref="RequestPlan"/> hands
/// <see cref="ModelChainWalk"/> for the model it leaves, and gets back for the model it goes to.
/// </summary>
internal readonly struct ModelRound(BackendSet disallowed, BackendSet closed, int attempts, RequestRoute route)
{
    /// <summary>Gets the backends the request may not use on the model.</summary>
    public BackendSet Disallowed { get; } = disallowed;

    /// <summary>Gets the backends closed to the request's next attempt on the model: disallowed, or tried in this round.</summary>
    public BackendSet Closed { get; } = closed;

    /// <summary>Gets how many attempts the round made (<c>MaxAttempts</c> bounds them).</summary>
    public int Attempts { get; } = attempts;

    /// <summary>Gets what the request routes over on the model.</summary>
    public RequestRoute Route { get; } = route;
}
