namespace Polly.PriorityRouting;

/// <summary>
/// Where one request may go, decided before its first attempt by the stages of <see cref="RequestPlanner"/>, and where
/// it has been: the backends it may not use at all (<c>disallowed</c>), those closed to its next attempt (disallowed,
/// or tried in this round), and the soft-affinity backend it prefers while that one is the best choice.
/// </summary>
/// <remarks>
/// <para>
/// The per-request properties live here, once, so they hold on every path: a disallowed backend is never selected,
/// after a failure, a released preference, or a wait alike; and with <see cref="PriorityRoutingHints.NoFailover"/> the
/// first backend acquired becomes the only allowed one, so the request is sent once, waits (with
/// <see cref="PriorityRoutingStrategyOptions.MaxQueueWait"/>) for that backend only, and its exhausted answer is that
/// backend's own.
/// </para>
/// <para>A mutable struct held by the attempt loop: no allocation per request.</para>
/// </remarks>
internal struct RequestPlan
{
    private readonly bool _noFailover;
    private BackendSet _disallowed;
    private BackendSet _closed;
    private RoutedBackend? _preferred;
    private RequestRoute _route;

    public RequestPlan(RequestRoute route, BackendSet disallowed, ModelRequest? model, AffinityDecision affinity, RoutedBackend? preferred, bool noFailover)
    {
        _route = route;
        Model = model;
        Affinity = affinity;
        _noFailover = noFailover;
        _disallowed = disallowed;
        _closed = disallowed.Copy();
        _preferred = preferred;
    }

    private RequestPlan(HttpResponseMessage answer) => Answer = answer;

    /// <summary>Gets the answer given without calling any backend (an unknown model, an id whose backend is gone).</summary>
    public HttpResponseMessage? Answer { get; }

    /// <summary>Gets what the request routes over: partition, model, cost, and the backends its exhausted answer counts.</summary>
    public readonly RequestRoute Route => _route;

    /// <summary>Gets the request's logical model when the pipeline maps models; each attempt's body follows it.</summary>
    public ModelRequest? Model { get; }

    /// <summary>Gets what affinity decided: the ids the request refers to or creates, a pinned or preferred backend.</summary>
    public AffinityDecision Affinity { get; }

    public static RequestPlan AnswerWith(HttpResponseMessage answer) => new(answer);

    /// <summary>
    /// Acquires the next backend through the pool: the preferred one first, once, while it is the best choice; else the
    /// best open one.
    /// </summary>
    public bool TryAcquire(BackendPool pool, out BackendLease lease)
    {
        lease = default;
        var acquired = false;
        if (_preferred is { } preferred)
        {
            // Once: a preference that is not the best choice, cannot be admitted, or fails, ends for this request.
            _preferred = null;
            acquired = pool.TryAcquirePreferred(preferred, ref _closed, in _route, out lease);
        }

        if (!acquired)
        {
            acquired = pool.TryAcquire(ref _closed, in _route, out lease);
        }

        if (acquired && _noFailover)
        {
            // The first backend acquired is the only one this request may ever use.
            _disallowed.AddAllExcept(lease.Backend.Index);
            _closed.AddAllExcept(lease.Backend.Index);
            _route = _route.WithExcluded(_disallowed.Copy());
        }

        return acquired;
    }

    /// <summary>
    /// A new round after a wait for a refill: every allowed backend is open again (those that failed before the wait
    /// may have room now); what the request may not use stays closed.
    /// </summary>
    public void StartOver() => _closed = _disallowed.Copy();

    /// <summary>The request was released from a wait holding <paramref name="held"/>: its next admission spends it.</summary>
    public void Hold(BudgetHold? held) => _route = _route.WithHeld(held);
}
