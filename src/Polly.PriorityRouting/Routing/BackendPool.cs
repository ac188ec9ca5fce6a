namespace Polly.PriorityRouting;

/// <summary>
/// The one owner of a pipeline's backends at run time: it chooses and admits the next attempt's backend, turns every
/// outcome into the backend's new state (classification, ejection, proactive throttling, store writes), and computes
/// the exhausted answer and snapshots from the same reads.
/// </summary>
/// <remarks>
/// Nothing here is per request except the lease; the state itself is the store's (see <see cref="SharedBackendState"/>:
/// deadlines, failure counts, probe slots, budgets), so rebuilt pipelines and other clients sharing the store see the
/// same backends.
/// </remarks>
internal sealed class BackendPool
{
    /// <summary>
    /// The <c>Retry-After</c> of the exhausted answer when every backend left is at its cap: short — the soonest whole
    /// second a client honours — because requests in flight end all the time.
    /// </summary>
    public static readonly TimeSpan CapacityRetryAfter = TimeSpan.FromSeconds(1);

    private readonly RoutedBackend[] _backends;
    private readonly BackendSelector _selector;
    private readonly BackendHealthTracker? _tracker;
    private readonly OutlierEjectionOptions _ejection;
    private readonly TimeProvider _timeProvider;
    private readonly TimeSpan _defaultCooldown;
    private readonly TimeSpan _maxCooldown;
    private readonly bool _proactiveThrottling;
    private readonly BackendBudgets? _budgets;
    private readonly Func<HttpRequestMessage, long>? _requestCost;
    private readonly IBackendReservationStore? _reservations;
    private int _slotWaiters;

    /// <param name="options">The pipeline's options.</param>
    /// <param name="shared">What the pipelines on the store share (see <see cref="SharedBackendState"/>).</param>
    /// <param name="timeProvider">The pipeline's clock.</param>
    public BackendPool(PriorityRoutingStrategyOptions options, SharedBackendState shared, TimeProvider timeProvider)
    {
        _backends = Route(options.Backends, options.Backends.Any(backend => backend.MaxConcurrentRequests is not null) ? shared.Concurrency : null);

        // A snapshot: options objects are mutable and may be rebound by a reload.
        _ejection = new OutlierEjectionOptions
        {
            Enabled = options.OutlierEjection.Enabled,
            ConsecutiveFailures = options.OutlierEjection.ConsecutiveFailures,
            BaseEjectionTime = options.OutlierEjection.BaseEjectionTime,
            MaxEjectionTime = options.OutlierEjection.MaxEjectionTime,
        };
        _tracker = _ejection.Enabled ? shared.Health : null;
        HasConcurrencyCaps = _backends.Any(backend => backend.InFlight is not null);
        _timeProvider = timeProvider;
        _defaultCooldown = options.DefaultCooldown;
        _maxCooldown = options.MaxCooldown;
        _proactiveThrottling = options.ProactiveThrottling;

        var longest = _ejection.Enabled && _ejection.MaxEjectionTime > _maxCooldown ? _ejection.MaxEjectionTime : _maxCooldown;
        Availability = new BackendAvailability(shared.Store, _tracker, longest);
        Latency = options.SelectionMode == BackendSelectionMode.LatencyAware ? new LatencyTracker(_backends.Length) : null;
        if (options.TokenBudgets)
        {
            _budgets = shared.Budgets;
            _budgets.SubscribeOnce(timeProvider);
            _reservations = shared.Reservations;
        }

        _requestCost = options.RequestCost;

        // With shared reservations the store, not this process's view, says whether a budget has room: the selection
        // does not skip a backend on the view (which learns another replica's spend late, and a refill late); the view
        // decides at admission when the store has no verdict (see ReserveAsync).
        _selector = new BackendSelector(_backends, Availability, options.Randomizer, Latency, _reservations is null ? _budgets : null);
        Queue = _budgets is not null && options.MaxQueueWait is { } maxWait ? new WaitQueue(timeProvider, _budgets, maxWait) : null;
        Models = ModelCatalog.Create(_backends, options.ModelFallbacks, options.ContextWindowFallbacks);
    }

    /// <summary>Gets the backends, best tier first, in configured order within a tier.</summary>
    public IReadOnlyList<RoutedBackend> Backends => _backends;

    public BackendAvailability Availability { get; }

    /// <summary>Gets the time-to-first-byte averages of latency-aware selection; <see langword="null"/> when it is off.</summary>
    public LatencyTracker? Latency { get; }

    /// <summary>Gets a value indicating whether some backend caps its requests in flight (<see cref="PriorityBackend.MaxConcurrentRequests"/>).</summary>
    public bool HasConcurrencyCaps { get; }

    /// <summary>
    /// Gets a value indicating whether admission reserves each attempt's cost in the store's shared budgets (a store
    /// that implements <see cref="IBackendReservationStore"/>, with budgets on): then <see cref="TryAcquire"/> leaves
    /// the budget to <see cref="ReserveAsync"/>.
    /// </summary>
    public bool SharesReservations => _reservations is not null;

    /// <summary>Gets which backends serve which model; <see langword="null"/> when no backend has a model map.</summary>
    public ModelCatalog? Models { get; }

    /// <summary>
    /// Gets where requests wait for the room promised them in a refill (<see cref="PriorityRoutingStrategyOptions.MaxQueueWait"/>);
    /// <see langword="null"/> when waiting is off. Per pipeline: it is disposed with the strategy.
    /// </summary>
    public WaitQueue? Queue { get; }

    /// <summary>
    /// Selects the best backend open to this request (see <see cref="RequestPlan"/>) and admits an attempt on it; the
    /// backend is closed to the request's later attempts. With <see cref="SharesReservations"/>, the budget's word is
    /// <see cref="ReserveAsync"/>'s.
    /// </summary>
    /// <returns><see langword="false"/> when no backend is left.</returns>
    public bool TryAcquire(ref BackendSet closed, in RequestRoute route, out BackendLease lease)
    {
        while (true)
        {
            var now = _timeProvider.GetUtcNow();
            var ejections = EjectionMark;
            var backend = _selector.SelectNext(closed, now, route);
            if (backend is null)
            {
                lease = default;
                return false;
            }

            closed.Add(backend.Index);
            if (TryAdmit(backend, now, ejections, route, out lease))
            {
                return true;
            }
        }
    }

    /// <summary>
    /// Admits an attempt on a soft-affinity backend while it is the best choice: open, in rotation, admitted by its
    /// budget, and of the best tier that could take the request now — a key never holds a request in a lower tier than
    /// an available one.
    /// </summary>
    /// <returns><see langword="false"/> when it is not the best choice; the request then routes normally.</returns>
    public bool TryAcquirePreferred(RoutedBackend preferred, ref BackendSet closed, in RequestRoute route, out BackendLease lease)
    {
        var now = _timeProvider.GetUtcNow();
        var ejections = EjectionMark;
        if (!_selector.IsBestChoice(preferred, closed, now, route))
        {
            lease = default;
            return false;
        }

        closed.Add(preferred.Index);
        return TryAdmit(preferred, now, ejections, route, out lease);
    }

    /// <summary>
    /// Records an outcome that moves the request on: the backend (or the request's partition of it, for a throttle)
    /// leaves rotation for the time its answer asked, or is ejected after repeated failures.
    /// </summary>
    public async ValueTask<BackendVerdict> RecordFailureAsync(
        BackendLease lease,
        Outcome<HttpResponseMessage> outcome,
        RequestRoute route,
        CancellationToken cancellationToken)
    {
        var backend = lease.Backend;
        var now = _timeProvider.GetUtcNow();
        var (cause, cooldown) = OutcomeClassifier.Classify(outcome, now, _defaultCooldown, _maxCooldown);
        SettleFailed(lease.Reservation, cause, outcome);
        var reason = cause;
        var ejections = 0;
        if (_tracker is not null)
        {
            if (!OutcomeClassifier.IsBackendFailure(cause))
            {
                // A throttle (or a custom-handled answer) proves the backend is up.
                _tracker.RecordHealthy(lease);
            }
            else if (_tracker.RecordFailure(lease, now, _ejection) is { } ejection)
            {
                ejections = ejection.Ejections;
                reason = BackendUnavailableReason.Ejected;
                cooldown = ejection.Duration > cooldown ? ejection.Duration : cooldown;
            }
        }

        // Throttles are per partition when the request has one; failures of the backend itself apply to all of it.
        var key = reason == BackendUnavailableReason.Throttled ? backend.GetThrottleKey(route.PartitionOn(backend)) : backend.StateKey;
        return await MarkAsync(key, reason, cause, cooldown, ejections, now, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Settles a failed attempt's shared reservation: given back when the backend did not count the attempt (it
    /// throttled it, or the connection failed), kept otherwise (a timeout or a server error may come after the backend
    /// counted it; the next answer corrects the count).
    /// </summary>
    private static void SettleFailed(ReservationTicket? reservation, BackendUnavailableReason cause, Outcome<HttpResponseMessage> outcome)
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

    /// <summary>
    /// Records an outcome that goes back to the caller: an answer proves the backend healthy — unless its watched body
    /// reports that when it ends (see <see cref="ResponseBodyWatcher"/>); an exception the predicate did not handle says
    /// nothing about it. Either way the lease then frees a probe slot.
    /// </summary>
    /// <param name="lease">The attempt's admission.</param>
    /// <param name="healthyNow">Whether the outcome proves the backend healthy now.</param>
    public void RecordAnswered(in BackendLease lease, bool healthyNow)
    {
        // The backend answered: it counted the attempt (an answer reporting budgets corrected the reservation already).
        lease.Reservation?.Keep();
        if (healthyNow)
        {
            _tracker?.RecordHealthy(lease);
        }
    }

    /// <summary>
    /// Reads the rate-limit budget of an answer that goes back to the caller; with proactive throttling, an answer that
    /// says its budget is spent takes the backend (or the request's partition of it) out of rotation before anyone pays
    /// a 429.
    /// </summary>
    /// <returns>The verdict when the backend left rotation; otherwise <see langword="null"/>.</returns>
    /// <param name="lease">The attempt's admission: its spend in the budget view, and its shared reservation, if any, which the answer corrects.</param>
    /// <param name="response">The answer.</param>
    /// <param name="route">The request's route.</param>
    /// <param name="started">The timestamp at which the attempt was sent.</param>
    /// <param name="cancellationToken">The caller's cancellation.</param>
    public ValueTask<BackendVerdict?> ObserveBudgetAsync(
        in BackendLease lease,
        HttpResponseMessage response,
        RequestRoute route,
        long started,
        CancellationToken cancellationToken)
    {
        // Budgets are read from answers that go back to the caller only: a handled answer (a 429) marks the backend with
        // its most precise signal (retry-after-ms), which a coarser x-ratelimit-reset-* must not outlast.
        // A backend reports its budget as of when it admitted the attempt, not when the answer arrives (a completion
        // answers seconds later): resets count from the send.
        var backend = lease.Backend;
        var key = backend.GetThrottleKey(route.PartitionOn(backend));
        var now = _timeProvider.GetUtcNow();
        var inFlight = _timeProvider.GetElapsedTime(started);
        _budgets?.Observe(key, response.Headers, now, _maxCooldown, sentAt: now - inFlight, ticket: lease.SpendTicket);
        lease.Reservation?.Correct(BackendBudgets.TryReadReport(response.Headers, _maxCooldown, now - inFlight, now, out var report) ? report : null);
        // With shared reservations the shared budget refuses what no longer fits, per request and until its refill; a mark
        // would hold every request off until the reset, whatever the request's size.
        if (!_proactiveThrottling || _reservations is not null ||
            !ThrottleSignalParser.TryGetExhaustedBudgetReset(response.Headers, _maxCooldown, out var cooldown) ||
            cooldown <= inFlight)
        {
            return default;
        }

        return MarkSpentAsync(key, cooldown - inFlight, cancellationToken);
    }

    /// <summary>
    /// A watched response body ended well, or the caller stopped reading after bytes arrived: the backend is healthy
    /// (its run of failures ends), unless the lease predates its current ejection.
    /// </summary>
    public void RecordBodyHealthy(in BackendLease lease) => _tracker?.RecordHealthy(lease);

    /// <summary>
    /// A watched response body broke after it reached the caller (aborted, or stalled): one more failure in its
    /// backend's run. Nothing is written unless that failure ejects the backend.
    /// </summary>
    /// <returns>The ejection's verdict when the backend was ejected; otherwise <see langword="null"/>.</returns>
    public ValueTask<BackendVerdict?> RecordBodyBrokenAsync(BackendLease lease, BackendUnavailableReason cause)
    {
        var now = _timeProvider.GetUtcNow();
        if (_tracker?.RecordFailure(lease, now, _ejection) is not { } ejection)
        {
            return default;
        }

        return MarkEjectedAsync(lease.Backend, cause, ejection.Duration, ejection.Ejections, now);
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
        var backends = BackendsOf(route);
        if (_budgets is null)
        {
            var (retryAfter, throttled) = Availability.GetExhaustion(backends, _timeProvider.GetUtcNow(), route);
            return AtCapacity((retryAfter, throttled, null), backends);
        }

        return AtCapacity(BudgetExhaustion.Compute(backends, Availability, _budgets, _timeProvider.GetUtcNow(), route, Queue?.MaxWait - waited), backends);
    }

    /// <summary>
    /// Waits, within <paramref name="bound"/>, until a slot frees on a backend the request may use that is in rotation
    /// and at its cap (<see cref="PriorityRoutingStrategyOptions.MaxQueueWait"/>); at most
    /// <see cref="WaitQueue.MaxWaiters"/> requests of the pipeline wait so at once.
    /// </summary>
    /// <returns>
    /// Whether a slot was given back in time (the request starts a new round); <see langword="false"/> at once when no
    /// such backend is at its cap, too many wait, or the bound is spent; also when the caller cancels.
    /// </returns>
    public async ValueTask<bool> WaitForSlotAsync(RequestRoute route, TimeSpan bound, bool continueOnCapturedContext, CancellationToken cancellationToken)
    {
        if (bound <= TimeSpan.Zero || SlotReleases(route) is not { } releases)
        {
            return false;
        }

        if (Interlocked.Increment(ref _slotWaiters) > WaitQueue.MaxWaiters)
        {
            Interlocked.Decrement(ref _slotWaiters);
            return false;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        try
        {
            var bounded = Task.Delay(bound, _timeProvider, timeout.Token);
            releases.Add(bounded);
            var first = await Task.WhenAny(releases).ConfigureAwait(continueOnCapturedContext);
            return first != bounded && !cancellationToken.IsCancellationRequested;
        }
        finally
        {
            // The delay's timer goes with the wait.
            await timeout.CancelAsync().ConfigureAwait(continueOnCapturedContext);
            Interlocked.Decrement(ref _slotWaiters);
        }
    }

    /// <summary>The release tasks of the request's backends at their cap and in rotation; <see langword="null"/> when none.</summary>
    private List<Task>? SlotReleases(RequestRoute route)
    {
        if (!HasConcurrencyCaps)
        {
            return null;
        }

        var now = _timeProvider.GetUtcNow();
        List<Task>? releases = null;
        foreach (var backend in BackendsOf(route))
        {
            if (backend.InFlight is not { } limit)
            {
                continue;
            }

            // The task first, then the count: a slot given back in between is not missed.
            var released = limit.WhenReleased();
            if (limit.IsFull && Availability.GetTimeUntilAvailable(backend, now, route.PartitionOn(backend), out _) == TimeSpan.Zero)
            {
                (releases ??= []).Add(released);
            }
        }

        return releases;
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
        if (!HasConcurrencyCaps || exhaustion.RetryAfter >= CapacityRetryAfter)
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

    /// <summary>
    /// Returns the time until the soonest backend a route allows is free for the request — in rotation and, with
    /// budgets, admitting its cost — without a promise: for the fallback models of an exhausted chain (the requested
    /// model's exhausted answer is the one that promises).
    /// </summary>
    /// <returns>The delay and whether it is a throttle; no delay when the route allows no backend at all.</returns>
    public (TimeSpan? RetryAfter, bool Throttled) GetTimeUntilAvailable(RequestRoute route)
    {
        var backends = BackendsOf(route);
        if (backends.Count == 0)
        {
            return (null, false);
        }

        var now = _timeProvider.GetUtcNow();
        if (_budgets is null)
        {
            var (retryAfter, throttled) = Availability.GetExhaustion(backends, now, route);
            return (retryAfter, throttled);
        }

        var soonest = TimeSpan.MaxValue;
        var anyThrottled = false;
        foreach (var backend in backends)
        {
            var remaining = BudgetExhaustion.TimeUntilFree(backend, Availability, _budgets, now, route, out var throttled, out _, out _);
            anyThrottled |= throttled;
            soonest = remaining < soonest ? remaining : soonest;
        }

        return (soonest, anyThrottled);
    }

    /// <summary>Returns whether a backend open to the request could still take it now (in rotation, admitted by its budget).</summary>
    public bool HasOpen(in BackendSet closed, RequestRoute route) => _selector.SelectNext(closed, _timeProvider.GetUtcNow(), route) is not null;

    /// <summary>
    /// Estimates a request's cost in tokens once per execution: by default from the one read of its body; 0 when budgets
    /// are off or the estimate fails.
    /// </summary>
    public long EstimateCost(HttpRequestMessage request, RequestBody? body)
    {
        if (_budgets is null)
        {
            return 0;
        }

        if (_requestCost is null)
        {
            return body?.Facts.EstimatedTokens ?? 0;
        }

        try
        {
            return Math.Max(0, _requestCost(request));
        }
        catch (Exception)
        {
            // An estimate is advice: a failing one routes as if the cost were unknown.
            return 0;
        }
    }

    /// <summary>Gets the tracker's count of ejections, taken before a selection's read (see <see cref="BackendHealthTracker.TryAdmit"/>).</summary>
    private long EjectionMark => _tracker?.EjectionMark ?? 0;

    /// <summary>
    /// Admits an attempt on a selected backend, unless another request's failure ejected it since <paramref name="ejections"/>
    /// was taken (before the selection's read), its ejection just ended and another request is probing it since
    /// (left to the probe), it is at its cap of requests in flight, or its budget no longer admits the request's estimated cost (checked and taken in one step:
    /// the selection's read may be stale by now).
    /// </summary>
    private bool TryAdmit(RoutedBackend backend, DateTimeOffset now, long ejections, in RequestRoute route, out BackendLease lease)
    {
        if (_tracker is null)
        {
            lease = new BackendLease(backend, null, 0, 0);
        }
        else if (!_tracker.TryAdmit(backend, now, ejections, out lease))
        {
            return false;
        }

        if (backend.InFlight is { } limit)
        {
            // Checked and counted in one step, before the budget is spent: a backend at its cap is skipped like one out
            // of rotation, for the next of its tier, then of the lower ones.
            if (limit.TryEnter() is not { } slot)
            {
                lease.Dispose();
                return false;
            }

            lease = lease.WithSlot(slot);
        }

        if (_reservations is null)
        {
            if (!TryTakeBudget(backend, now, route, out var ticket))
            {
                lease.Dispose();
                return false;
            }

            lease = lease.WithSpend(ticket);
        }

        return true;
    }

    /// <summary>
    /// Reserves an admitted attempt's estimated cost in the store's shared budget of its backend and partition (one
    /// round trip, bounded by the store). Granted, the attempt goes (this process's view counts it too); refused, the
    /// backend is closed to this request only, until the refill the store said — no mark, no health effect, nothing
    /// counted; with no verdict (nothing known, the store slow, failing or down), this process's view decides.
    /// </summary>
    /// <returns>The lease when the attempt goes (it holds the counted reservation); else none, and the refusal's refill when refused.</returns>
    public async ValueTask<(BackendLease? Lease, BackendStateKey Key, DateTimeOffset? RefusedUntil)> ReserveAsync(
        BackendLease lease, RequestRoute route, bool continueOnCapturedContext, CancellationToken cancellationToken)
    {
        var backend = lease.Backend;
        var key = backend.GetThrottleKey(route.PartitionOn(backend));
        BackendReservation reservation;
        try
        {
            var headroom = _budgets!.SharedHeadroom(key, route.Headroom, _timeProvider.GetUtcNow());
            reservation = await _reservations!.ReserveAsync(key, route.Cost, headroom, _timeProvider.GetUtcNow(), cancellationToken)
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
            // The caller gave up while the reservation travelled: nothing is admitted, nothing spent, anything counted given back.
            ticket?.Release();
            lease.Dispose();
            return (null, key, null);
        }

        if (reservation.Status == BackendReservationStatus.Granted)
        {
            _budgets!.Spend(key, route.Cost, now, out var spent, route.Held, backend.Quota, route.Headroom);
            route.Held?.Release();
            return (lease.WithReservation(ticket).WithSpend(spent), key, null);
        }

        if (reservation.Status == BackendReservationStatus.Unknown && TryTakeBudget(backend, now, route, out var taken))
        {
            return (lease.WithReservation(ticket).WithSpend(taken), key, null);
        }

        ticket?.Release();
        lease.Dispose();

        // A store's refill is bounded like every deadline it is told (a custom store's may be anything).
        return (null, key, reservation.Status == BackendReservationStatus.Refused ? now + (reservation.RetryAfter < _maxCooldown ? reservation.RetryAfter : _maxCooldown) : null);
    }

    /// <summary>
    /// Takes the request's estimated cost off this process's budget view when it admits it (checked and taken in one
    /// step); a released waiter admitted elsewhere gives its held room back (spent, when admitted where it was held).
    /// </summary>
    private bool TryTakeBudget(RoutedBackend backend, DateTimeOffset now, in RequestRoute route, out long ticket)
    {
        ticket = 0;
        if (_budgets is not null && !_budgets.TryTake(backend.GetThrottleKey(route.PartitionOn(backend)), route.Cost, now, out ticket, route.Held, backend.Quota, route.Headroom))
        {
            return false;
        }

        route.Held?.Release();
        return true;
    }

    /// <summary>The backends a request's exhausted answer and slot waits count: its model's, minus those its plan disallowed.</summary>
    private IReadOnlyList<RoutedBackend> BackendsOf(RequestRoute route)
    {
        IReadOnlyList<RoutedBackend> backends = route.Model?.Backends ?? _backends;
        if (route.Excluded is { } excluded)
        {
            // Only on the exhausted path of a restricted request (affinity, hints): allocating the list is fine.
            backends = [.. backends.Where(backend => !excluded.Contains(backend.Index))];
        }

        return backends;
    }

    /// <summary>Sorts backends by priority, keeping the configured order within a tier.</summary>
    /// <param name="backends">The configured backends.</param>
    /// <param name="concurrency">The in-flight counters of the store, when some backend has a cap.</param>
    internal static RoutedBackend[] Route(IEnumerable<PriorityBackend> backends, BackendConcurrency? concurrency = null)
        => [.. backends
            .Select((backend, position) => (backend, position))
            .OrderBy(item => item.backend.Priority)
            .ThenBy(item => item.position)
            .Select((item, index) => new RoutedBackend(item.backend, index, concurrency))];

    private async ValueTask<BackendVerdict?> MarkSpentAsync(BackendStateKey key, TimeSpan cooldown, CancellationToken cancellationToken)
        => await MarkAsync(key, BackendUnavailableReason.Throttled, BackendUnavailableReason.Throttled, cooldown, 0, _timeProvider.GetUtcNow(), cancellationToken)
            .ConfigureAwait(false);

    private async ValueTask<BackendVerdict?> MarkEjectedAsync(RoutedBackend backend, BackendUnavailableReason cause, TimeSpan duration, int ejections, DateTimeOffset now)
        => await MarkAsync(backend.StateKey, BackendUnavailableReason.Ejected, cause, duration, ejections, now, CancellationToken.None).ConfigureAwait(false);

    private async ValueTask<BackendVerdict> MarkAsync(
        BackendStateKey key,
        BackendUnavailableReason reason,
        BackendUnavailableReason cause,
        TimeSpan cooldown,
        int ejections,
        DateTimeOffset now,
        CancellationToken cancellationToken)
    {
        var leftRotation = ejections > 0 || !Availability.IsMarked(key, now);
        try
        {
            await Availability.Store.MarkUnavailableAsync(key, new BackendUnavailability(now + cooldown, reason, now), now, cancellationToken)
                .ConfigureAwait(false);
            return new BackendVerdict(reason, cause, cooldown, leftRotation, ejections, null);
        }
        catch (Exception e)
        {
            // A failing store never fails a request: this attempt still fails over, later ones may retry the backend.
            // A store that gave up because the caller cancelled is not failing: the loop returns the cancellation next.
            return new BackendVerdict(reason, cause, cooldown, leftRotation, ejections, cancellationToken.IsCancellationRequested ? null : e);
        }
    }
}
