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
        _selector = new BackendSelector(_backends, Availability, options.Randomizer);
    }

    /// <summary>Gets the backends, best tier first, in configured order within a tier.</summary>
    public IReadOnlyList<RoutedBackend> Backends => _backends;

    public BackendAvailability Availability { get; }

    /// <summary>
    /// Selects the best backend this request has not tried yet and admits an attempt on it.
    /// </summary>
    /// <returns><see langword="false"/> when no backend is left.</returns>
    public bool TryAcquire(ref TriedBackends tried, string? partition, out BackendLease lease)
    {
        while (true)
        {
            var now = _timeProvider.GetUtcNow();
            var backend = _selector.SelectNext(tried, now, partition);
            if (backend is null)
            {
                lease = default;
                return false;
            }

            tried.Add(backend.Index);
            if (_tracker is null)
            {
                lease = new BackendLease(backend, null, 0, 0);
                return true;
            }

            if (_tracker.TryAdmit(backend, now, out lease))
            {
                return true;
            }

            // Its ejection just ended and another request is probing it: leave it to the probe.
        }
    }

    /// <summary>
    /// Records an outcome that moves the request on: the backend (or the request's partition of it, for a throttle)
    /// leaves rotation for the time its answer asked, or is ejected after repeated failures.
    /// </summary>
    public async ValueTask<BackendVerdict> RecordFailureAsync(
        BackendLease lease,
        Outcome<HttpResponseMessage> outcome,
        string? partition,
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
        var key = reason == BackendUnavailableReason.Throttled ? backend.GetThrottleKey(partition) : backend.StateKey;
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
        string? partition,
        CancellationToken cancellationToken)
    {
        if (outcome.Result is not { } response)
        {
            // An exception the predicate did not handle says nothing about the backend; the lease frees a probe slot.
            return null;
        }

        _tracker?.RecordHealthy(lease);
        if (!_proactiveThrottling ||
            !ThrottleSignalParser.TryGetExhaustedBudgetReset(response.Headers, _maxCooldown, out var cooldown) ||
            cooldown <= TimeSpan.Zero)
        {
            return null;
        }

        var now = _timeProvider.GetUtcNow();
        return await MarkAsync(
                lease.Backend.GetThrottleKey(partition), BackendUnavailableReason.Throttled, BackendUnavailableReason.Throttled, cooldown, 0, now, cancellationToken)
            .ConfigureAwait(false);
    }

    /// <summary>Computes the exhausted answer's delay and whether it is a throttle, over this pipeline's backends.</summary>
    /// <param name="partition">The request's throttle partition.</param>
    /// <param name="excluded">The backends the request was never allowed to use (affinity, hints), if any.</param>
    public (TimeSpan RetryAfter, bool Throttled) GetExhaustion(string? partition, in TriedBackends? excluded = null)
    {
        IReadOnlyList<RoutedBackend> allowed = _backends;
        if (excluded is { } restricted)
        {
            // Only on the exhausted path of a restricted request: allocating the list is fine.
            var list = new List<RoutedBackend>();
            foreach (var backend in _backends)
            {
                if (!restricted.Contains(backend.Index))
                {
                    list.Add(backend);
                }
            }

            allowed = list;
        }

        return Availability.GetExhaustion(allowed, _timeProvider.GetUtcNow(), partition);
    }

    /// <summary>Sorts backends by priority, keeping the configured order within a tier.</summary>
    internal static RoutedBackend[] Route(IEnumerable<PriorityBackend> backends)
        => [.. backends
            .Select((backend, position) => (backend, position))
            .OrderBy(item => item.backend.Priority)
            .ThenBy(item => item.position)
            .Select((item, index) => new RoutedBackend(item.backend, index))];

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
            await Availability.Store.MarkUnavailableAsync(key, new BackendUnavailability(now + cooldown, reason), now, cancellationToken)
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
