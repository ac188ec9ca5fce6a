namespace Polly.PriorityRouting;

/// <summary>
/// A pool's budget step of admission: an admitted attempt's estimated cost is taken off this process's budget view, or,
/// with a store that implements <see cref="IBackendReservationStore"/>, reserved in the store's shared budget first
/// (<see cref="ReserveAsync"/>); a failed attempt's reservation is then settled (<see cref="SettleFailed"/>).
/// </summary>
internal sealed class BudgetAdmission
{
    private readonly BackendBudgets? _budgets;
    private readonly IBackendReservationStore? _reservations;
    private readonly TimeSpan _maxCooldown;
    private readonly TimeProvider _timeProvider;

    /// <param name="budgets">The budget views, or <see langword="null"/> when budgets are off.</param>
    /// <param name="reservations">The store's shared budgets, or <see langword="null"/> when it has none (or budgets are off).</param>
    /// <param name="maxCooldown">The bound of every deadline the pipeline is told (<see cref="PriorityRoutingStrategyOptions.MaxCooldown"/>).</param>
    /// <param name="timeProvider">The pipeline's clock.</param>
    public BudgetAdmission(BackendBudgets? budgets, IBackendReservationStore? reservations, TimeSpan maxCooldown, TimeProvider timeProvider)
    {
        _budgets = budgets;
        _reservations = reservations;
        _maxCooldown = maxCooldown;
        _timeProvider = timeProvider;
    }

    /// <summary>
    /// Gets a value indicating whether admission reserves each attempt's cost in the store's shared budgets (a store
    /// that implements <see cref="IBackendReservationStore"/>, with budgets on): then <see cref="BackendPool.TryAcquire"/>
    /// leaves the budget to <see cref="ReserveAsync"/>.
    /// </summary>
    public bool SharesReservations => _reservations is not null;

    /// <summary>
    /// Reserves an admitted attempt's estimated cost in the store's shared budget of its backend and partition (one
    /// round trip, bounded by the store). Granted, the attempt goes (this process's view counts it too); refused, the
    /// backend is closed to this request only, until the refill the store said — no mark, no health effect, nothing
    /// counted; with no verdict (nothing known, the store slow, failing or down), this process's view decides.
    /// </summary>
    /// <returns>
    /// The lease when the attempt goes (it holds the counted reservation); else none, and the refusal's refill when
    /// refused, and whether the store claimed room for this request at that refill.
    /// </returns>
    public async ValueTask<(BackendLease? Lease, BackendStateKey Key, DateTimeOffset? RefusedUntil, bool Claimed)> ReserveAsync(
        BackendLease lease, RequestRoute route, bool continueOnCapturedContext, CancellationToken cancellationToken)
    {
        var backend = lease.Backend;
        var key = backend.GetThrottleKey(route.PartitionOn(backend));
        BackendReservation reservation;
        try
        {
            var reservedAt = _timeProvider.GetUtcNow();
            var promised = _budgets!.PromisedShare(key, route.Headroom, reservedAt);
            reservation = await _reservations!.ReserveAsync(key, route.Cost, route.Headroom, promised, route.Claimant, reservedAt, cancellationToken)
                .ConfigureAwait(continueOnCapturedContext);
        }
        catch (Exception)
        {
            // A failing store never fails a request (no verdict); the caller's cancellation is seen below.
            reservation = default;
        }

        var now = _timeProvider.GetUtcNow();
        var ticket = reservation.IsCounted ? new ReservationTicket(_reservations!, reservation) : null;
        if (cancellationToken.IsCancellationRequested)
        {
            // The caller gave up while the reservation travelled: nothing is admitted, nothing spent, anything counted or
            // claimed given back (nobody comes for the claim; its room would stay idle until its grace ends).
            ticket?.Release();
            lease.Dispose();
            if (reservation.HoldsClaim)
            {
                GiveBack(key, route.Claimant);
            }

            return (null, key, null, false);
        }

        if (reservation.Status == BackendReservationStatus.Granted)
        {
            _budgets!.Spend(key, route.Cost, now, out var spent, route.Held, backend.Quota, route.Headroom);
            route.Held?.Release();
            return (lease.WithReservation(ticket).WithSpend(spent), key, null, false);
        }

        if (reservation.Status == BackendReservationStatus.Unknown && TryTake(backend, now, route, out var taken))
        {
            return (lease.WithReservation(ticket).WithSpend(taken), key, null, false);
        }

        ticket?.Release();
        lease.Dispose();

        // A store's refill is bounded like every deadline it is told (a custom store's may be anything); a bounded claim
        // is no longer the claimed moment.
        var refused = reservation.Status == BackendReservationStatus.Refused;
        var bounded = reservation.RetryAfter < _maxCooldown;
        if (refused && !bounded && reservation.HoldsClaim)
        {
            // The caller is told MaxCooldown, sooner than the claim: nobody comes for it at its moment, and the refusal
            // no longer says it holds one (so no admission would give it back): given back now.
            GiveBack(key, route.Claimant);
        }

        return (null, key, refused ? now + (bounded ? reservation.RetryAfter : _maxCooldown) : null, refused && bounded && reservation.HoldsClaim);
    }

    /// <summary>
    /// Gives back the claims the request's refusals hold in the shared budgets: all of them once it is admitted
    /// (<paramref name="keepSoonest"/> false), all but the soonest when it is sent back or waits (it comes back for that
    /// one). A store that fails is ignored: the claims then end with their grace.
    /// </summary>
    public void ReleaseClaims(in RequestRoute route, bool keepSoonest, BackendStateKey? admitted = null)
    {
        if (_reservations is null || route.Refusals is not { } refusals || route.Claimant == 0)
        {
            return;
        }

        try
        {
            refusals.ReleaseClaims(_reservations, route.Claimant, keepSoonest, admitted);
        }
        catch (Exception)
        {
            // A store's failure never fails a request.
        }
    }

    /// <summary>Gives back one claim the store holds for the request; a store that fails is ignored (the claim ends with its grace).</summary>
    private void GiveBack(BackendStateKey key, long claimant)
    {
        if (claimant == 0)
        {
            return;
        }

        try
        {
            _reservations!.ReleaseClaim(key, claimant);
        }
        catch (Exception)
        {
            // A store's failure never fails a request.
        }
    }

    /// <summary>
    /// Takes the request's estimated cost off this process's budget view when it admits it (checked and taken in one
    /// step); a released waiter admitted elsewhere gives its held room back (spent, when admitted where it was held).
    /// </summary>
    public bool TryTake(RoutedBackend backend, DateTimeOffset now, in RequestRoute route, out long ticket)
    {
        ticket = 0;
        if (_budgets is not null && !_budgets.TryTake(backend.GetThrottleKey(route.PartitionOn(backend)), route.Cost, now, out ticket, route.Held, backend.Quota, route.Headroom))
        {
            return false;
        }

        route.Held?.Release();
        return true;
    }

    /// <summary>
    /// Settles a failed attempt's shared reservation: given back when the backend did not count the attempt (it
    /// throttled it, or the connection failed), kept otherwise (a timeout or a server error may come after the backend
    /// counted it; the next answer corrects the count).
    /// </summary>
    public static void SettleFailed(ReservationTicket? reservation, BackendUnavailableReason cause, Outcome<HttpResponseMessage> outcome)
    {
        if (reservation is null)
        {
            return;
        }

        if (cause == BackendUnavailableReason.Throttled || outcome.Exception is HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError })
        {
            reservation.Release();
        }
        else
        {
            reservation.Keep();
        }
    }
}
