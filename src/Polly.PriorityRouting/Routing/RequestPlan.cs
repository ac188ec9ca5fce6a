namespace Polly.PriorityRouting;

/// <summary>
/// Where one request may go, decided once before its first attempt by <see cref="RequestPlanner"/>, and what it has
/// tried so far: its route (partition, model, cost, exclusions), the backends already tried or never allowed, and the
/// soft-affinity backend it prefers while that one holds.
/// </summary>
/// <remarks>A mutable struct held by the attempt loop: no allocation per request.</remarks>
internal struct RequestPlan
{
    private readonly bool _noFailover;
    private readonly int _backendCount;
    private TriedBackends _tried;
    private TriedBackends _unrestricted;
    private RoutedBackend? _sticky;

    public RequestPlan(
        RequestRoute route,
        TriedBackends tried,
        ModelRequest? model,
        AffinityDecision affinity,
        RoutedBackend? sticky,
        bool noFailover,
        int backendCount)
    {
        Route = route;
        Model = model;
        Affinity = affinity;
        _noFailover = noFailover;
        _backendCount = backendCount;
        _sticky = sticky;
        _unrestricted = tried;
        _tried = tried;
        if (sticky is not null)
        {
            // The key's backend first, and only it, until it fails or cannot be admitted.
            _unrestricted = tried.Copy();
            _tried = TriedBackends.AllExcept(backendCount, sticky.Index);
        }
    }

    private RequestPlan(HttpResponseMessage answer) => Answer = answer;

    /// <summary>Gets the answer given without calling any backend (an unknown model, an id whose backend is gone).</summary>
    public HttpResponseMessage? Answer { get; }

    public RequestRoute Route { get; private set; }

    /// <summary>Gets the request's logical model when the pipeline maps models; each attempt's body follows it.</summary>
    public ModelRequest? Model { get; }

    /// <summary>Gets what affinity decided: the ids the request refers to or creates, a pinned or preferred backend.</summary>
    public AffinityDecision Affinity { get; }

    public static RequestPlan AnswerWith(HttpResponseMessage answer) => new(answer);

    /// <summary>
    /// Acquires the next backend through the pool: the soft-affinity backend while it can be admitted, else the best
    /// allowed one. With "no failover" the first backend acquired is the only one the request may ever use.
    /// </summary>
    public bool TryAcquire(BackendPool pool, out BackendLease lease)
    {
        var acquired = pool.TryAcquire(ref _tried, Route, out lease);
        if (!acquired && _sticky is not null)
        {
            // The key's backend could not be admitted after all: route normally.
            ReleaseSticky();
            acquired = pool.TryAcquire(ref _tried, Route, out lease);
        }

        if (acquired && _noFailover)
        {
            // One backend only: a failure answers with its own Retry-After.
            _tried = TriedBackends.AllExcept(_backendCount, lease.Backend.Index);
            Route = Route.WithExcluded(_tried.Copy());
        }

        return acquired;
    }

    /// <summary>
    /// Returns a copy that owns its own tried sets: kept before the first attempt, it lets a request that waited for a
    /// refill start over with every allowed backend (those that failed before the wait may have room now).
    /// </summary>
    public readonly RequestPlan Copy()
    {
        var copy = this;
        copy._tried = _tried.Copy();
        copy._unrestricted = _unrestricted.Copy();
        return copy;
    }

    /// <summary>The request was released from a wait holding <paramref name="held"/>: its next admission spends it.</summary>
    public void Hold(BudgetHold? held) => Route = Route.WithHeld(held);

    /// <summary>An attempt failed and the request moves on: a soft-affinity preference ends here.</summary>
    public void OnFailover()
    {
        if (_sticky is not null)
        {
            // The key follows the backend that answers next.
            ReleaseSticky();
        }
    }

    private void ReleaseSticky()
    {
        _tried = _unrestricted;
        _tried.Add(_sticky!.Index);
        _sticky = null;
    }
}
