namespace Polly.PriorityRouting;

/// <summary>
/// The one owner of a pipeline's backends at run time: it chooses and admits the next attempt's backend, turns every
/// outcome into the backend's new state (classification, ejection, proactive throttling, store writes), and computes
/// the exhausted answer and snapshots from the same reads.
/// </summary>
/// <remarks>
/// Nothing here is per request except the lease; the state itself lives in the store (deadlines) and in the
/// <see cref="BackendHealthTracker"/> of that store (failure counts, probe slots), so rebuilt pipelines and other clients
/// sharing the store see the same backends.
/// </remarks>
internal sealed class BackendPool
{
    private readonly RoutedBackend[] _backends;
    private readonly BackendSelector _selector;
    private readonly BackendHealthTracker? _tracker;
    private readonly OutlierEjectionOptions _ejection;
    private readonly TimeProvider _timeProvider;
    private readonly TimeSpan _defaultCooldown;
    private readonly TimeSpan _maxCooldown;
    private readonly bool _proactiveThrottling;
    private readonly BackendBudgets? _budgets;
    private readonly Func<HttpRequestMessage, long> _requestCost;

    public BackendPool(PriorityRoutingStrategyOptions options, IBackendStateStore store, TimeProvider timeProvider)
    {
        _backends = Route(options.Backends);

        // A snapshot: options objects are mutable and may be rebound by a reload.
        _ejection = new OutlierEjectionOptions
        {
            Enabled = options.OutlierEjection.Enabled,
            ConsecutiveFailures = options.OutlierEjection.ConsecutiveFailures,
            BaseEjectionTime = options.OutlierEjection.BaseEjectionTime,
            MaxEjectionTime = options.OutlierEjection.MaxEjectionTime,
        };
        _tracker = _ejection.Enabled ? BackendHealthTracker.For(store) : null;
        _timeProvider = timeProvider;
        _defaultCooldown = options.DefaultCooldown;
        _maxCooldown = options.MaxCooldown;
        _proactiveThrottling = options.ProactiveThrottling;

        var longest = _ejection.Enabled && _ejection.MaxEjectionTime > _maxCooldown ? _ejection.MaxEjectionTime : _maxCooldown;
        Availability = new BackendAvailability(store, _tracker, longest);
        Latency = options.SelectionMode == BackendSelectionMode.LatencyAware ? new LatencyTracker(_backends.Length) : null;
        _budgets = options.TokenBudgets ? BackendBudgets.For(store, timeProvider) : null;
        _requestCost = options.RequestCost ?? OpenAIRequestCost.Estimate;
        _selector = new BackendSelector(_backends, Availability, options.Randomizer, Latency, _budgets);
        Queue = _budgets is not null && options.MaxQueueWait is { } maxWait ? new WaitQueue(timeProvider, _budgets, maxWait) : null;
        Models = ModelCatalog.Create(_backends);
    }

    /// <summary>Gets the backends, best tier first, in configured order within a tier.</summary>
    public IReadOnlyList<RoutedBackend> Backends => _backends;

    public BackendAvailability Availability { get; }

    /// <summary>Gets the time-to-first-byte averages of latency-aware selection; <see langword="null"/> when it is off.</summary>
    public LatencyTracker? Latency { get; }

    /// <summary>Gets which backends serve which model; <see langword="null"/> when no backend has a model map.</summary>
    public ModelCatalog? Models { get; }

    /// <summary>
    /// Gets where requests wait for the room promised them in a refill (<see cref="PriorityRoutingStrategyOptions.MaxQueueWait"/>);
    /// <see langword="null"/> when waiting is off. Per pipeline: it is disposed with the strategy.
    /// </summary>
    public WaitQueue? Queue { get; }

    /// <summary>
    /// Selects the best backend this request has not tried yet and admits an attempt on it.
    /// </summary>
    /// <returns><see langword="false"/> when no backend is left.</returns>
    public bool TryAcquire(ref TriedBackends tried, RequestRoute route, out BackendLease lease)
    {
        while (true)
        {
            var now = _timeProvider.GetUtcNow();
            var backend = _selector.SelectNext(tried, now, route);
            if (backend is null)
            {
                lease = default;
                return false;
            }

            tried.Add(backend.Index);
            if (_tracker is null)
            {
                lease = new BackendLease(backend, null, 0, 0);
            }
            else if (!_tracker.TryAdmit(backend, now, out lease))
            {
                // Its ejection just ended and another request began probing it since it was selected: leave it to the probe.
                continue;
            }

            // Checked and spent in one step: the selection's read may be stale by now. A backend left to its probe is
            // sent nothing.
            if (_budgets is not null && !_budgets.TryTake(backend.GetThrottleKey(route.PartitionOn(backend)), route.Cost, now, route.Held))
            {
                lease.Dispose();
                continue;
            }

            // A released waiter admitted elsewhere gives its held room back (spent, when admitted where it was held).
            route.Held?.Release();
            return true;
        }
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
    /// Records an outcome that goes back to the caller: the backend answered, so it is healthy; and if the answer says a
    /// rate-limit budget is spent, the backend leaves rotation before anyone pays a 429.
    /// </summary>
    /// <returns>The verdict when the backend left rotation; otherwise <see langword="null"/>.</returns>
    public async ValueTask<BackendVerdict?> RecordReturnedAsync(
        BackendLease lease,
        Outcome<HttpResponseMessage> outcome,
        RequestRoute route,
        CancellationToken cancellationToken,
        bool deferHealth = false)
    {
        if (outcome.Result is not { } response)
        {
            // An exception the predicate did not handle says nothing about the backend; the lease frees a probe slot.
            return null;
        }

        if (!deferHealth)
        {
            // A watched body reports the backend's health when it ends instead (see ResponseBodyWatcher).
            _tracker?.RecordHealthy(lease);
        }

        // Budgets are read from answers that go back to the caller only: a handled answer (a 429) marks the backend with
        // its most precise signal (retry-after-ms), which a coarser x-ratelimit-reset-* must not outlast.
        _budgets?.Observe(lease.Backend.GetThrottleKey(route.PartitionOn(lease.Backend)), response.Headers, _timeProvider.GetUtcNow(), _maxCooldown);
        if (!_proactiveThrottling ||
            !ThrottleSignalParser.TryGetExhaustedBudgetReset(response.Headers, _maxCooldown, out var cooldown) ||
            cooldown <= TimeSpan.Zero)
        {
            return null;
        }

        var now = _timeProvider.GetUtcNow();
        return await MarkAsync(
                lease.Backend.GetThrottleKey(route.PartitionOn(lease.Backend)), BackendUnavailableReason.Throttled, BackendUnavailableReason.Throttled, cooldown, 0, now, cancellationToken)
            .ConfigureAwait(false);
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
        IReadOnlyList<RoutedBackend> backends = route.Model?.Backends ?? _backends;
        if (route.Excluded is { } excluded)
        {
            // Only on the exhausted path of a restricted request (affinity, hints): allocating the list is fine.
            backends = [.. backends.Where(backend => !excluded.Contains(backend.Index))];
        }

        if (_budgets is null)
        {
            var (retryAfter, throttled) = Availability.GetExhaustion(backends, _timeProvider.GetUtcNow(), route);
            return (retryAfter, throttled, null);
        }

        return BudgetExhaustion.Compute(backends, Availability, _budgets, _timeProvider.GetUtcNow(), route, Queue?.MaxWait - waited);
    }

    /// <summary>Estimates a request's cost in tokens once per execution; 0 when budgets are off or the estimate fails.</summary>
    public long EstimateCost(HttpRequestMessage request)
    {
        if (_budgets is null)
        {
            return 0;
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

    /// <summary>Sorts backends by priority, keeping the configured order within a tier.</summary>
    internal static RoutedBackend[] Route(IEnumerable<PriorityBackend> backends)
        => [.. backends
            .Select((backend, position) => (backend, position))
            .OrderBy(item => item.backend.Priority)
            .ThenBy(item => item.position)
            .Select((item, index) => new RoutedBackend(item.backend, index))];

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
