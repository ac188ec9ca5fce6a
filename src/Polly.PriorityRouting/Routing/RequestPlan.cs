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
/// backend of the current model is left — none in rotation, or every one tried in this call — the next model's
/// allowed set replaces the current one. <c>MaxAttempts</c> bounds each model's round; a round that reached it while a
/// backend of its model could still take the request ends the call rather than fall back.
/// </para>
/// <para>A mutable struct held by the attempt loop: no allocation per request.</para>
/// </remarks>
internal struct RequestPlan
{
    private readonly bool _noFailover;
    private readonly int _maxAttempts;
    private readonly ModelFallbackStage? _fallbacks;
    private readonly RequestFacts _facts;
    private BackendSet _disallowed;
    private BackendSet _closed;
    private RoutedBackend? _preferred;
    private RequestRoute _route;
    private int _attempts;

    // The models being walked (the requested model's fallback chain, or after a context-length answer that model's
    // context-window chain); null when the request stays on its model.
    private ModelRoute[]? _chain;
    private int _position;
    private bool _onContextWindowChain;

    // This round's state of each model of the chain the walk left (what was closed, how many attempts it made), so a
    // return to one (ReturnToOpenModel) or a walk on to one again goes on with its round; null until a model is left.
    private (BackendSet Closed, int Attempts)?[]? _rounds;

    // The models of the context-window chain that answered the prompt does not fit: for this call, as if out for good
    // (never selected again, not counted by the exhausted answer); kept across rounds. Null until one answered.
    private bool[]? _tooSmall;

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
        _fallbacks = fallbacks;
        if (fallbacks is not null)
        {
            _facts = facts;
            _chain = facts.Model!.Route!.ModelChain;
        }
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
    public readonly bool CanMoveToLargerModel
        => _fallbacks is not null && (_onContextWindowChain ? _position + 1 < _chain!.Length : Route.Model!.ContextWindowChain.Length > 0);

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
    public void MoveToLargerModel()
    {
        if (_onContextWindowChain)
        {
            (_tooSmall ??= new bool[_chain!.Length])[_position] = true;
            MoveTo(_position + 1);
            return;
        }

        _chain = Route.Model!.ContextWindowChain;
        _onContextWindowChain = true;
        MoveTo(0, newRound: true);
    }

    /// <summary>
    /// A new round after a wait for a refill: every allowed backend is open again (those that failed before the wait
    /// may have room now), from the first model of the chain; what the request may not use stays closed.
    /// </summary>
    public void StartOver()
    {
        _attempts = 0;
        _route = _route.WithoutRefusals();
        if (_chain is not null && _position != 0)
        {
            MoveTo(0, newRound: true);
            return;
        }

        _rounds = null;

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
        for (var i = 0; _chain is not null && i < _position; i++)
        {
            if (!IsTooSmall(i) && pool.Exhaustion.GetTimeUntilAvailable(RouteOf(_chain[i])).RetryAfter == TimeSpan.Zero &&
                (_rounds?[i] is not { } round || (round.Attempts < _maxAttempts && pool.HasOpen(round.Closed, RouteOf(_chain[i])))))
            {
                MoveTo(i);
                return;
            }
        }
    }

    /// <summary>
    /// Computes the exhausted answer: over the allowed backends of the current model, or of every model of the chain
    /// (the soonest of them all; the budget view's promise is the first model's).
    /// </summary>
    /// <param name="pool">The pool.</param>
    /// <param name="waited">How long the request has waited in the strategy so far (see <see cref="PoolExhaustion.GetExhaustion"/>).</param>
    public readonly (TimeSpan RetryAfter, bool Throttled, BudgetReservation? Reservation) GetExhaustion(BackendPool pool, TimeSpan waited)
    {
        if (_chain is null)
        {
            return pool.Exhaustion.GetExhaustion(Route, waited);
        }

        // A room still held from a wait is the first model's: given back before the chain is read.
        Route.Held?.Release();

        // A model none of whose backends the request may use has no say; the budget view's promise is the first model's.
        TimeSpan? soonest = null;
        var throttled = false;
        BudgetReservation? reservation = null;
        for (var i = 0; i < _chain.Length; i++)
        {
            var route = RouteOf(_chain[i]);
            var (retryAfter, modelThrottled) = IsTooSmall(i) ? (null, false) : pool.Exhaustion.GetTimeUntilAvailable(route);
            if (retryAfter is null)
            {
                continue;
            }

            if (i == 0)
            {
                (retryAfter, modelThrottled, reservation) = pool.Exhaustion.GetExhaustion(route, waited);
            }

            throttled |= modelThrottled;
            if (soonest is null || retryAfter < soonest)
            {
                // Coming back then finds a fallback: the first model's promise is not the soonest.
                reservation = i == 0 ? reservation : null;
                soonest = retryAfter;
            }
        }

        return (soonest ?? TimeSpan.Zero, throttled, reservation);
    }

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
            if (!IsTooSmall(_position) && _attempts < _maxAttempts && TryAcquireOnModel(pool, out lease))
            {
                return true;
            }

            if (!TryFallBack(pool))
            {
                lease = default;
                return false;
            }
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

    /// <summary>
    /// Moves to the next model of the chain when the current one has nothing left for the request; never while one of
    /// its backends could still take it (a round that reached <c>MaxAttempts</c> with one left ends the call).
    /// </summary>
    private bool TryFallBack(BackendPool pool)
    {
        if (_chain is null || _position + 1 >= _chain.Length ||
            (_attempts >= _maxAttempts && pool.HasOpen(_closed, Route)))
        {
            return false;
        }

        MoveTo(_position + 1);
        return true;
    }

    private void MoveTo(int position, bool newRound = false)
    {
        // A room held from a wait is on a budget of the model left behind (or started over from): given back.
        Route.Held?.Release();
        if (newRound)
        {
            _rounds = null;
        }
        else
        {
            (_rounds ??= new (BackendSet, int)?[_chain!.Length])[_position] = (_closed, _attempts);
        }

        _position = position;
        var model = _chain![position];
        _disallowed = _fallbacks!.DisallowedFor(model, _facts, out var narrowed);
        (_closed, _attempts) = _rounds?[position] ?? (_disallowed.Copy(), 0);
        _preferred = null;
        _route = _route.ForModel(model, narrowed ? _disallowed.Copy() : null);
    }

    private readonly bool IsTooSmall(int position) => _tooSmall is not null && _chain is not null && position < _tooSmall.Length && _tooSmall[position];

    private readonly RequestRoute RouteOf(ModelRoute model)
    {
        var disallowed = _fallbacks!.DisallowedFor(model, _facts, out var narrowed);
        return Route.ForModel(model, narrowed ? disallowed : null);
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
