namespace Polly.PriorityRouting;

/// <summary>
/// A pool's exhausted answer: how long until a backend the request may use is free for it, and whether that is a
/// throttle — from the backends' rotation, with budgets from their views (see <see cref="BudgetExhaustion"/>), and at
/// once when the only backends in rotation are at their cap.
/// </summary>
internal sealed class PoolExhaustion
{
    /// <summary>
    /// The <c>Retry-After</c> of the exhausted answer when every backend left is at its cap: short — the soonest whole
    /// second a client honours — because requests in flight end all the time.
    /// </summary>
    public static readonly TimeSpan CapacityRetryAfter = TimeSpan.FromSeconds(1);

    private readonly IReadOnlyList<RoutedBackend> _backends;
    private readonly BackendAvailability _availability;
    private readonly BackendBudgets? _budgets;
    private readonly WaitQueue? _queue;
    private readonly bool _hasConcurrencyCaps;
    private readonly TimeProvider _timeProvider;

    /// <param name="backends">The pool's backends.</param>
    /// <param name="availability">The pool's reads of the backends' rotation.</param>
    /// <param name="budgets">The budget views, or <see langword="null"/> when budgets are off.</param>
    /// <param name="queue">The pool's wait queue, or <see langword="null"/> when waiting is off.</param>
    /// <param name="hasConcurrencyCaps">Whether some backend caps its requests in flight.</param>
    /// <param name="timeProvider">The pipeline's clock.</param>
    public PoolExhaustion(
        IReadOnlyList<RoutedBackend> backends,
        BackendAvailability availability,
        BackendBudgets? budgets,
        WaitQueue? queue,
        bool hasConcurrencyCaps,
        TimeProvider timeProvider)
    {
        _backends = backends;
        _availability = availability;
        _budgets = budgets;
        _queue = queue;
        _hasConcurrencyCaps = hasConcurrencyCaps;
        _timeProvider = timeProvider;
    }

    /// <summary>
    /// Computes the exhausted answer's delay and whether it is a throttle, over the backends that could have taken the
    /// request: those that serve its model, else all of this pipeline's; with budgets, after the demand already told
    /// to come back.
    /// </summary>
    /// <returns>
    /// The delay, whether it is a throttle, and the room the budget view promised the request in a refill (see
    /// <see cref="BudgetExhaustion"/>), which a caller waiting in the strategy holds; <see langword="null"/> when nothing was promised.
    /// </returns>
    /// <param name="route">The request's route; a room it still holds from a wait is released first.</param>
    /// <param name="waited">How long the request has waited in the strategy so far: promises are chosen within what is left of the bound.</param>
    public (TimeSpan RetryAfter, bool Throttled, BudgetReservation? Reservation) GetExhaustion(RequestRoute route, TimeSpan waited = default)
    {
        route.Held?.Release();
        var backends = route.BackendsOf(_backends);
        if (_budgets is null)
        {
            var (retryAfter, throttled) = _availability.GetExhaustion(backends, _timeProvider.GetUtcNow(), route);
            return AtCapacity((retryAfter, throttled, null), backends);
        }

        return AtCapacity(BudgetExhaustion.Compute(backends, _availability, _budgets, _timeProvider.GetUtcNow(), route, _queue?.MaxWait - waited), backends);
    }

    /// <summary>
    /// Returns the time until the soonest backend a route allows is free for the request — in rotation and, with
    /// budgets, admitting its cost — without a promise: for the fallback models of an exhausted chain (the requested
    /// model's exhausted answer is the one that promises).
    /// </summary>
    /// <returns>The delay and whether it is a throttle; no delay when the route allows no backend at all.</returns>
    public (TimeSpan? RetryAfter, bool Throttled) GetTimeUntilAvailable(RequestRoute route)
    {
        var backends = route.BackendsOf(_backends);
        if (backends.Count == 0)
        {
            return (null, false);
        }

        var now = _timeProvider.GetUtcNow();
        if (_budgets is null)
        {
            var (retryAfter, throttled) = _availability.GetExhaustion(backends, now, route);
            return (retryAfter, throttled);
        }

        var soonest = TimeSpan.MaxValue;
        var anyThrottled = false;
        foreach (var backend in backends)
        {
            var remaining = BudgetExhaustion.TimeUntilFree(backend, _availability, _budgets, now, route, out var throttled, out _, out _);
            anyThrottled |= throttled;
            soonest = remaining < soonest ? remaining : soonest;
        }

        return (soonest, anyThrottled);
    }

    /// <summary>
    /// A backend that is in rotation yet took no attempt was at its cap: the caller is answered at once with a 429 and
    /// <see cref="CapacityRetryAfter"/> rather than "now", since a slot frees when some response ends, which no
    /// deadline tells.
    /// </summary>
    private (TimeSpan RetryAfter, bool Throttled, BudgetReservation? Reservation) AtCapacity(
        (TimeSpan RetryAfter, bool Throttled, BudgetReservation? Reservation) exhaustion,
        IReadOnlyList<RoutedBackend> backends)
    {
        if (!_hasConcurrencyCaps || exhaustion.RetryAfter >= CapacityRetryAfter)
        {
            return exhaustion;
        }

        foreach (var backend in backends)
        {
            if (backend.InFlight is { IsFull: true })
            {
                return (CapacityRetryAfter, true, exhaustion.Reservation);
            }
        }

        return exhaustion;
    }
}
