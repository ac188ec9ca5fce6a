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
/// <para>
/// A request that may fall back (<see cref="ModelFallbackStage"/>) walks a chain of models, one round each: when no
/// backend of the current model is left, the next model's allowed set replaces the current one. The walk and its rules
/// are <see cref="ModelChainWalk"/>'s; the plan holds the current model's round and hands it over when the walk moves.
/// </para>
/// <para>A mutable struct held by the attempt loop: no allocation per request.</para>
/// </remarks>
internal struct RequestPlan
{
    private readonly bool _noFailover;
    private readonly int _maxAttempts;
    private BackendSet _disallowed;
    private BackendSet _closed;
    private RoutedBackend? _preferred;
    private RequestRoute _route;
    private int _attempts;
    private ModelChainWalk _walk;

    public RequestPlan(
        RequestRoute route,
        BackendSet disallowed,
        in RequestFacts facts,
        RoutedBackend? preferred,
        int maxAttempts,
        ModelFallbackStage? fallbacks)
    {
        _route = route;
        Model = facts.Model;
        Affinity = facts.Affinity;
        _noFailover = facts.Hints?.NoFailover == true;
        _maxAttempts = maxAttempts;
        _disallowed = disallowed;
        _closed = disallowed.Copy();
        _preferred = preferred;
        _walk = new ModelChainWalk(fallbacks, facts, maxAttempts);
    }

    private RequestPlan(HttpResponseMessage answer) => Answer = answer;

    /// <summary>Gets the answer given without calling any backend (an unknown model, an id whose backend is gone).</summary>
    public HttpResponseMessage? Answer { get; }

    /// <summary>
    /// Gets what the request routes over now: partition, the model being served (a fallback's, after a fallback), cost,
    /// and the backends its exhausted answer counts.
    /// </summary>
    public readonly RequestRoute Route => _route;

    /// <summary>Gets the request's logical model when the pipeline maps models; each attempt's body follows it.</summary>
    public ModelRequest? Model { get; }

    /// <summary>Gets what affinity decided: the ids the request refers to or creates, a pinned or preferred backend.</summary>
    public AffinityDecision Affinity { get; }

    /// <summary>
    /// Gets a value indicating whether a context-length answer moves this request to a larger model: the next of the
    /// context-window chain it walks, or the first of its current model's.
    /// </summary>
    public readonly bool CanMoveToLargerModel => _walk.CanMoveToLargerModel(Route);

    public static RequestPlan AnswerWith(HttpResponseMessage answer) => new(answer);

    /// <summary>
    /// Acquires the next backend for <paramref name="plan"/> (see <see cref="TryAcquire"/>); when the pool shares
    /// reservations, each selected backend's reservation first (one round trip each): a refused one is closed to this
    /// request and the next is tried. Completes synchronously, allocating nothing, when the pool shares none. A caller
    /// that cancelled, before or while a reservation travelled, acquires nothing.
    /// </summary>
    /// <param name="plan">The request's plan.</param>
    /// <param name="pool">The pool.</param>
    /// <param name="refused">Told of each backend whose shared budget refused the request, and whether the request is background.</param>
    /// <param name="context">The execution's context (its cancellation).</param>
    /// <returns>The plan as it is after the acquisition, and the lease, or none when no backend is left or the caller cancelled.</returns>
    public static ValueTask<(RequestPlan Plan, BackendLease? Lease)> AcquireAsync(RequestPlan plan, BackendPool pool, Action<RoutedBackend, bool, bool> refused, ResilienceContext context)
    {
        if (context.CancellationToken.IsCancellationRequested)
        {
            return new((plan, null));
        }

        if (!pool.BudgetAdmission.SharesReservations)
        {
            var acquired = plan.TryAcquire(pool, out var lease);
            return new((plan, acquired ? lease : null));
        }

        return AcquireReservedAsync(plan, pool, refused, context);
    }

    /// <summary>
    /// Acquires the next backend through the pool: the preferred one first, once, while it is the best choice; else the
    /// best open one; when the current model has none left, the best of the next model of the chain.
    /// </summary>
    public bool TryAcquire(BackendPool pool, out BackendLease lease)
    {
        if (!TrySelect(pool, out lease))
        {
            return false;
        }

        Admitted(lease);
        return true;
    }

    /// <summary>
    /// Moves the request to the next larger model after a backend answered that its prompt does not fit (see
    /// <see cref="CanMoveToLargerModel"/>): not another backend of the same model.
    /// </summary>
    public void MoveToLargerModel() => Enter(_walk.MoveToLargerModel(Round));

    /// <summary>
    /// A new round after a wait for a refill: every allowed backend is open again (those that failed before the wait
    /// may have room now), from the first model of the chain; what the request may not use stays closed.
    /// </summary>
    public void StartOver()
    {
        _attempts = 0;
        _route = _route.WithoutRefusals();
        if (_walk.StartOver(Round, out var first))
        {
            Enter(first);
            return;
        }

        _closed = _disallowed.Copy();
    }

    /// <summary>
    /// Before the call selects once more because a backend is open now (a deadline passed between the selection and the
    /// exhausted answer): goes back to the first model of the chain that has one, which the walk left when it was out —
    /// the exhausted answer is computed over every model, so the selection once more must see them too, in their order.
    /// Only to a model whose round this call has not spent: a backend tried for it in this round is not tried again.
    /// </summary>
    public void ReturnToOpenModel(BackendPool pool)
    {
        if (_walk.TryReturnToOpenModel(pool, Round, out var open))
        {
            Enter(open);
        }
    }

    /// <summary>
    /// Computes the exhausted answer: over the allowed backends of the current model, or of every model of the chain
    /// (the soonest of them all; the budget view's promise is the first model's).
    /// </summary>
    /// <param name="pool">The pool.</param>
    /// <param name="waited">How long the request has waited in the strategy so far (see <see cref="PoolExhaustion.GetExhaustion"/>).</param>
    public readonly (TimeSpan RetryAfter, bool Throttled, BudgetReservation? Reservation) GetExhaustion(BackendPool pool, TimeSpan waited)
        => _walk.GetExhaustion(pool, Route, waited);

    private static async ValueTask<(RequestPlan Plan, BackendLease? Lease)> AcquireReservedAsync(RequestPlan plan, BackendPool pool, Action<RoutedBackend, bool, bool> refused, ResilienceContext context)
    {
        while (!context.CancellationToken.IsCancellationRequested && plan.TrySelect(pool, out var selected))
        {
            var (lease, key, refusedUntil, claimed) = await pool.BudgetAdmission.ReserveAsync(selected, plan.Route, context.ContinueOnCapturedContext, context.CancellationToken)
                .ConfigureAwait(context.ContinueOnCapturedContext);
            if (lease is { } admitted)
            {
                // Admitted: it will come back for none of the claims its refusals hold (the one of this key, if any, redeemed).
                pool.BudgetAdmission.ReleaseClaims(plan.Route, keepSoonest: false, admitted: key);
                plan.Admitted(admitted);
                return (plan, admitted);
            }

            if (refusedUntil is { } until)
            {
                // Closed to this request only (TrySelect closed it); its refill is when the exhausted answer sends the caller back.
                plan._route = plan._route.WithRefusal(key, until, claimed);
                refused(selected.Backend, plan._route.IsBackground, claimed);
            }
        }

        return (plan, null);
    }

    /// <summary>Selects and admits the next backend, the budget aside when the pool shares reservations; counts nothing yet.</summary>
    private bool TrySelect(BackendPool pool, out BackendLease lease)
    {
        while (true)
        {
            if (!_walk.IsOnTooSmallModel && _attempts < _maxAttempts && TryAcquireOnModel(pool, out lease))
            {
                return true;
            }

            // Nothing left on this model: the walk moves on to the next, if its rules allow.
            if (!_walk.TryFallBack(pool, Round, out var next))
            {
                lease = default;
                return false;
            }

            Enter(next);
        }
    }

    /// <summary>
    /// An attempt goes to the acquired backend: it counts toward <c>MaxAttempts</c>, and with
    /// <see cref="PriorityRoutingHints.NoFailover"/> the backend becomes the only one this request may ever use.
    /// </summary>
    private void Admitted(in BackendLease lease)
    {
        _attempts++;
        if (_noFailover)
        {
            _disallowed.AddAllExcept(lease.Backend.Index);
            _closed.AddAllExcept(lease.Backend.Index);
            _route = _route.WithExcluded(_disallowed.Copy());
        }
    }

    private bool TryAcquireOnModel(BackendPool pool, out BackendLease lease)
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

        return acquired;
    }

    /// <summary>The current model's round, as the walk is handed it when it moves.</summary>
    private readonly ModelRound Round => new(_disallowed, _closed, _attempts, _route);

    /// <summary>
    /// Goes on with <paramref name="round"/>, on the model the walk moved to; a soft preference was the model left's, and
    /// ends with it.
    /// </summary>
    private void Enter(in ModelRound round)
    {
        _disallowed = round.Disallowed;
        _closed = round.Closed;
        _attempts = round.Attempts;
        _preferred = null;
        _route = round.Route;
    }

    /// <summary>
    /// The round ends with no backend admitted (the caller waits, or gets the exhausted answer): of the claims its
    /// refusals hold, only the soonest is kept — the one it comes back for.
    /// </summary>
    public readonly void KeepSoonestClaim(BackendPool pool) => pool.BudgetAdmission.ReleaseClaims(Route, keepSoonest: true);

    /// <summary>The caller gave up: it comes back for none of the claims its refusals hold.</summary>
    public readonly void GiveBackClaims(BackendPool pool) => pool.BudgetAdmission.ReleaseClaims(Route, keepSoonest: false);

    /// <summary>The request was released from a wait holding <paramref name="held"/>: its next admission spends it.</summary>
    public void Hold(BudgetHold? held) => _route = _route.WithHeld(held);
}
