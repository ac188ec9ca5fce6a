namespace Polly.PriorityRouting;

/// <summary>
/// The walk of a request that may fall back (<see cref="ModelFallbackStage"/>) along a chain of models, one round each:
/// which model it is on, what the round of each model it left did, which models answered that the prompt does not fit,
/// and the rules of moving on. <see cref="RequestPlan"/> holds it and hands it the current model's round when it moves.
/// </summary>
/// <remarks>
/// <para>
/// The chain is the requested model's fallback chain, or after a context-length answer that model's context-window
/// chain. When no backend of the current model is left — none in rotation, or every one tried in this call — the next
/// model's allowed set replaces the current one. <c>MaxAttempts</c> bounds each model's round; a round that reached it
/// while a backend of its model could still take the request ends the call rather than fall back.
/// </para>
/// <para>
/// A request that stays on its model walks nothing: it never moves, and its exhausted answer is its route's.
/// </para>
/// <para>A mutable struct held by the plan, itself a struct: copied with it, no allocation per request.</para>
/// </remarks>
internal struct ModelChainWalk
{
    private readonly ModelFallbackStage? _fallbacks;
    private readonly RequestFacts _facts;
    private readonly int _maxAttempts;

    // The models being walked (the requested model's fallback chain, or after a context-length answer that model's
    // context-window chain); null when the request stays on its model.
    private ModelRoute[]? _chain;
    private int _position;
    private bool _onContextWindowChain;

    // This round's state of each model of the chain the walk left (what was closed, how many attempts it made), so a
    // return to one (TryReturnToOpenModel) or a walk on to one again goes on with its round; null until a model is left.
    private (BackendSet Closed, int Attempts)?[]? _rounds;

    // The models of the context-window chain that answered the prompt does not fit: for this call, as if out for good
    // (never selected again, not counted by the exhausted answer); kept across rounds. Null until one answered.
    private bool[]? _tooSmall;

    /// <summary>Initializes the walk of a request, on the first model of its chain.</summary>
    /// <param name="fallbacks">The stage that gives each model of the chain its allowed set, or <see langword="null"/>: the request stays on its model.</param>
    /// <param name="facts">What the request says (the fallback stage narrows each model by it).</param>
    /// <param name="maxAttempts">The bound of each model's round.</param>
    public ModelChainWalk(ModelFallbackStage? fallbacks, in RequestFacts facts, int maxAttempts)
    {
        _fallbacks = fallbacks;
        _maxAttempts = maxAttempts;
        if (fallbacks is not null)
        {
            _facts = facts;
            _chain = facts.Model!.Route!.ModelChain;
        }
    }

    /// <summary>
    /// Gets a value indicating whether the current model answered that the prompt does not fit: none of its backends is
    /// selected again in this call.
    /// </summary>
    public readonly bool IsOnTooSmallModel => IsTooSmall(_position);

    /// <summary>
    /// Returns whether a context-length answer moves the request to a larger model: the next of the context-window chain
    /// it walks, or the first of its current model's.
    /// </summary>
    /// <param name="current">What the request routes over now.</param>
    public readonly bool CanMoveToLargerModel(in RequestRoute current)
        => _fallbacks is not null && (_onContextWindowChain ? _position + 1 < _chain!.Length : current.Model!.ContextWindowChain.Length > 0);

    /// <summary>
    /// Moves to the next larger model after a backend answered that the prompt does not fit (see
    /// <see cref="CanMoveToLargerModel"/>): the current model is closed to this call; a walk not yet on a context-window
    /// chain starts the current model's, in a new round.
    /// </summary>
    /// <param name="current">The round on the model the request leaves.</param>
    /// <returns>The round on the larger model.</returns>
    public ModelRound MoveToLargerModel(in ModelRound current)
    {
        if (_onContextWindowChain)
        {
            (_tooSmall ??= new bool[_chain!.Length])[_position] = true;
            return MoveTo(_position + 1, current);
        }

        _chain = current.Route.Model!.ContextWindowChain;
        _onContextWindowChain = true;
        return MoveTo(0, current, newRound: true);
    }

    /// <summary>
    /// Starts a new round after a wait for a refill: what the round of every model did is forgotten, and a walk that left
    /// the first model of its chain goes back to it.
    /// </summary>
    /// <param name="current">The round on the current model.</param>
    /// <param name="first">The new round on the first model, when the walk went back to it.</param>
    /// <returns>
    /// Whether the walk went back to the first model; if not, the request is on it already (or walks nothing) and its
    /// plan reopens the current round itself.
    /// </returns>
    public bool StartOver(in ModelRound current, out ModelRound first)
    {
        if (_chain is not null && _position != 0)
        {
            first = MoveTo(0, current, newRound: true);
            return true;
        }

        _rounds = null;
        first = default;
        return false;
    }

    /// <summary>
    /// Goes back to the first model of the chain, before the current one, that has a backend open now, and whose round
    /// this call has not spent: a backend tried for it in this round is not tried again.
    /// </summary>
    /// <param name="pool">The pool.</param>
    /// <param name="current">The round on the current model.</param>
    /// <param name="open">The round on the model gone back to.</param>
    /// <returns>Whether the walk went back to a model.</returns>
    public bool TryReturnToOpenModel(BackendPool pool, in ModelRound current, out ModelRound open)
    {
        for (var i = 0; _chain is not null && i < _position; i++)
        {
            if (!IsTooSmall(i) && pool.Exhaustion.GetTimeUntilAvailable(RouteOf(_chain[i], current.Route)).RetryAfter == TimeSpan.Zero &&
                (_rounds?[i] is not { } round || (round.Attempts < _maxAttempts && pool.HasOpen(round.Closed, RouteOf(_chain[i], current.Route)))))
            {
                open = MoveTo(i, current);
                return true;
            }
        }

        open = default;
        return false;
    }

    /// <summary>
    /// Moves to the next model of the chain when the current one has nothing left for the request; never while one of
    /// its backends could still take it (a round that reached <c>MaxAttempts</c> with one left ends the call).
    /// </summary>
    /// <param name="pool">The pool.</param>
    /// <param name="current">The round on the model the request leaves.</param>
    /// <param name="next">The round on the next model.</param>
    /// <returns>Whether the walk moved on.</returns>
    public bool TryFallBack(BackendPool pool, in ModelRound current, out ModelRound next)
    {
        if (_chain is null || _position + 1 >= _chain.Length ||
            (current.Attempts >= _maxAttempts && pool.HasOpen(current.Closed, current.Route)))
        {
            next = default;
            return false;
        }

        next = MoveTo(_position + 1, current);
        return true;
    }

    /// <summary>
    /// Computes the exhausted answer: over the allowed backends of the current model, or of every model of the chain
    /// (the soonest of them all; the budget view's promise is the first model's).
    /// </summary>
    /// <param name="pool">The pool.</param>
    /// <param name="current">What the request routes over now.</param>
    /// <param name="waited">How long the request has waited in the strategy so far (see <see cref="PoolExhaustion.GetExhaustion"/>).</param>
    public readonly (TimeSpan RetryAfter, bool Throttled, BudgetReservation? Reservation) GetExhaustion(BackendPool pool, in RequestRoute current, TimeSpan waited)
    {
        if (_chain is null)
        {
            return pool.Exhaustion.GetExhaustion(current, waited);
        }

        // A room still held from a wait is the first model's: given back before the chain is read.
        current.Held?.Release();

        // A model none of whose backends the request may use has no say; the budget view's promise is the first model's.
        TimeSpan? soonest = null;
        var throttled = false;
        BudgetReservation? reservation = null;
        for (var i = 0; i < _chain.Length; i++)
        {
            var route = RouteOf(_chain[i], current);
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

    /// <summary>
    /// Leaves the current model for the one at <paramref name="position"/>: keeps the round left (unless a new round
    /// starts), and goes on with the round of the model entered, or opens it.
    /// </summary>
    private ModelRound MoveTo(int position, in ModelRound current, bool newRound = false)
    {
        // A room held from a wait is on a budget of the model left behind (or started over from): given back.
        current.Route.Held?.Release();
        if (newRound)
        {
            _rounds = null;
        }
        else
        {
            (_rounds ??= new (BackendSet, int)?[_chain!.Length])[_position] = (current.Closed, current.Attempts);
        }

        _position = position;
        var model = _chain![position];
        var disallowed = _fallbacks!.DisallowedFor(model, _facts, out var narrowed);
        var (closed, attempts) = _rounds?[position] ?? (disallowed.Copy(), 0);
        return new ModelRound(disallowed, closed, attempts, current.Route.ForModel(model, narrowed ? disallowed.Copy() : null));
    }

    private readonly bool IsTooSmall(int position) => _tooSmall is not null && _chain is not null && position < _tooSmall.Length && _tooSmall[position];

    private readonly RequestRoute RouteOf(ModelRoute model, in RequestRoute current)
    {
        var disallowed = _fallbacks!.DisallowedFor(model, _facts, out var narrowed);
        return current.ForModel(model, narrowed ? disallowed : null);
    }
}
