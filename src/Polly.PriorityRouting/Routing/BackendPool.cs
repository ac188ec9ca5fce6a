namespace Polly.PriorityRouting;

/// <summary>
/// The one owner of a pipeline's backends at run time: it chooses and admits the next attempt's backend, and turns every
/// outcome into the backend's new state (classification, ejection, proactive throttling).
/// </summary>
/// <remarks>
/// Nothing here is per request except the lease; the state itself is the store's (see <see cref="SharedBackendState"/>:
/// deadlines, failure counts, probe slots, budgets), so rebuilt pipelines and other clients sharing the store see the
/// same backends. Its machinery lives beside it, each owned here: the budget step of admission
/// (<see cref="BudgetAdmission"/>), the store writes (<see cref="BackendMarker"/>), the exhausted answer
/// (<see cref="PoolExhaustion"/>), the waits for a slot (<see cref="SlotWaits"/>), the cost estimate
/// (<see cref="CostEstimator"/>).
/// </remarks>
internal sealed class BackendPool
{
    private readonly RoutedBackend[] _backends;
    private readonly BackendSelector _selector;
    private readonly BackendMarker _marker;
    private readonly BackendHealthTracker? _tracker;
    private readonly OutlierEjectionOptions _ejection;
    private readonly TimeProvider _timeProvider;
    private readonly TimeSpan _defaultCooldown;
    private readonly TimeSpan _maxCooldown;
    private readonly bool _proactiveThrottling;
    private readonly BackendBudgets? _budgets;

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
        _marker = new BackendMarker(Availability, timeProvider);
        Latency = options.SelectionMode == BackendSelectionMode.LatencyAware ? new LatencyTracker(_backends.Length) : null;
        if (options.TokenBudgets)
        {
            _budgets = shared.Budgets;
            _budgets.SubscribeOnce(timeProvider);
        }

        BudgetAdmission = new BudgetAdmission(_budgets, options.TokenBudgets ? shared.Reservations : null, _maxCooldown, timeProvider);
        Costs = new CostEstimator(_budgets is not null, options.RequestCost);

        // With shared reservations the store, not this process's view, says whether a budget has room: the selection
        // does not skip a backend on the view (which learns another replica's spend late, and a refill late); the view
        // decides at admission when the store has no verdict (see BudgetAdmission.ReserveAsync).
        _selector = new BackendSelector(_backends, Availability, options.Randomizer, Latency, BudgetAdmission.SharesReservations ? null : _budgets);
        Queue = _budgets is not null && options.MaxQueueWait is { } maxWait ? new WaitQueue(timeProvider, _budgets, maxWait) : null;
        Models = ModelCatalog.Create(_backends, options.ModelFallbacks, options.ContextWindowFallbacks);
        Exhaustion = new PoolExhaustion(_backends, Availability, _budgets, Queue, HasConcurrencyCaps, timeProvider);
        SlotWaits = new SlotWaits(_backends, Availability, HasConcurrencyCaps, timeProvider);
    }

    /// <summary>Gets the backends, best tier first, in configured order within a tier.</summary>
    public IReadOnlyList<RoutedBackend> Backends => _backends;

    public BackendAvailability Availability { get; }

    /// <summary>Gets the time-to-first-byte averages of latency-aware selection; <see langword="null"/> when it is off.</summary>
    public LatencyTracker? Latency { get; }

    /// <summary>Gets a value indicating whether some backend caps its requests in flight (<see cref="PriorityBackend.MaxConcurrentRequests"/>).</summary>
    public bool HasConcurrencyCaps { get; }

    /// <summary>Gets which backends serve which model; <see langword="null"/> when no backend has a model map.</summary>
    public ModelCatalog? Models { get; }

    /// <summary>
    /// Gets where requests wait for the room promised them in a refill (<see cref="PriorityRoutingStrategyOptions.MaxQueueWait"/>);
    /// <see langword="null"/> when waiting is off. Per pipeline: it is disposed with the strategy.
    /// </summary>
    public WaitQueue? Queue { get; }

    /// <summary>Gets the exhausted answer over this pool's backends.</summary>
    public PoolExhaustion Exhaustion { get; }

    /// <summary>Gets the waits for a slot on this pool's backends at their cap.</summary>
    public SlotWaits SlotWaits { get; }

    /// <summary>Gets the estimate of a request's cost in tokens (0 when budgets are off).</summary>
    public CostEstimator Costs { get; }

    /// <summary>Gets the budget step of admission: this process's view, or the store's shared reservations.</summary>
    public BudgetAdmission BudgetAdmission { get; }

    /// <summary>
    /// Selects the best backend open to this request (see <see cref="RequestPlan"/>) and admits an attempt on it; the
    /// backend is closed to the request's later attempts. With <see cref="BudgetAdmission.SharesReservations"/>, the budget's
    /// word is <see cref="BudgetAdmission.ReserveAsync"/>'s.
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
        BudgetAdmission.SettleFailed(lease.Reservation, cause, outcome);
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
        return await _marker.MarkAsync(key, reason, cause, cooldown, ejections, now, cancellationToken).ConfigureAwait(false);
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
        var reported = RateLimitHeaders.TryRead(response.Headers, _maxCooldown, now - inFlight, now, out var report);
        if (reported)
        {
            _budgets?.Observe(key, report, lease.SpendTicket);
        }

        lease.Reservation?.Correct(reported ? report : null);
        // With shared reservations the shared budget refuses what no longer fits, per request and until its refill; a mark
        // would hold every request off until the reset, whatever the request's size.
        if (!_proactiveThrottling || BudgetAdmission.SharesReservations ||
            !ThrottleSignalParser.TryGetExhaustedBudgetReset(response.Headers, _maxCooldown, out var cooldown) ||
            cooldown <= inFlight)
        {
            return default;
        }

        return _marker.MarkSpentAsync(key, cooldown - inFlight, cancellationToken);
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

        return _marker.MarkEjectedAsync(lease.Backend, cause, ejection.Duration, ejection.Ejections, now);
    }

    /// <summary>Returns whether a backend open to the request could still take it now (in rotation, admitted by its budget).</summary>
    public bool HasOpen(in BackendSet closed, RequestRoute route) => _selector.SelectNext(closed, _timeProvider.GetUtcNow(), route) is not null;

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

        if (!BudgetAdmission.SharesReservations)
        {
            if (!BudgetAdmission.TryTake(backend, now, route, out var ticket))
            {
                lease.Dispose();
                return false;
            }

            lease = lease.WithSpend(ticket);
        }

        return true;
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
}
