namespace Polly.PriorityRouting;

/// <summary>
/// Decides, once per request and before its first attempt, where it may go: its throttle partition, its body made
/// replayable, its model (and so the backends that serve it), its estimated cost, the backend affinity pins it to or
/// prefers, and the caller's per-request hints.
/// </summary>
internal sealed class RequestPlanner
{
    private readonly BackendPool _pool;
    private readonly RoutingTelemetry _telemetry;
    private readonly TimeProvider _timeProvider;
    private readonly Func<HttpRequestMessage, string?>? _partitionKey;
    private readonly bool _anyDrained;

    public RequestPlanner(PriorityRoutingStrategyOptions options, BackendPool pool, RoutingTelemetry telemetry, TimeProvider timeProvider)
    {
        _pool = pool;
        _telemetry = telemetry;
        _timeProvider = timeProvider;
        _partitionKey = options.ThrottlePartitionKey;
        _anyDrained = pool.Backends.Any(backend => backend.Drained);
        Affinity = options.Affinity is { Enabled: true } affinity
            ? new AffinityRouter(affinity, affinity.Store ?? options.AffinityStoreFromServices ?? InMemoryAffinityStore.Shared, pool.Backends)
            : null;
    }

    /// <summary>Gets the affinity router, or <see langword="null"/> when affinity is off.</summary>
    public AffinityRouter? Affinity { get; }

    /// <summary>
    /// Plans a request. The caller's own failures (a body that cannot be read, a partition function that throws) are
    /// thrown as theirs, before any backend is involved; the body then replays on every attempt, an outer retry's too.
    /// </summary>
    public async ValueTask<RequestPlan> PlanAsync(HttpRequestMessage original, bool continueOnCapturedContext, CancellationToken cancellationToken)
    {
        var partition = _partitionKey?.Invoke(original);
        await AttemptRequest.PrepareContentAsync(original, cancellationToken).ConfigureAwait(continueOnCapturedContext);

        // The model, and so the backends that may take the request: once, from the path or the buffered body.
        ModelRequest? model = null;
        if (_pool.Models is { } models)
        {
            model = await ModelRequest.ResolveAsync(models, original, cancellationToken).ConfigureAwait(continueOnCapturedContext);
        }

        var cost = _pool.EstimateCost(original);
        var hints = PriorityRoutingRequestOptions.Of(original);
        AffinityDecision affinity = default;
        if (Affinity is not null)
        {
            affinity = await Affinity.ResolveAsync(original, hints?.AffinityKey, cancellationToken).ConfigureAwait(continueOnCapturedContext);
        }

        if (model is { Route: null })
        {
            _telemetry.ModelNotFound(model.Name);
            return RequestPlan.AnswerWith(ModelNotFoundResponse.Create(original, model.Name, _pool.Models!.Names));
        }

        if (affinity.MissingBackend is not null)
        {
            return RequestPlan.AnswerWith(AffinityRouter.NotConfigured(affinity, original));
        }

        // A request that refers to an id goes to the backend holding it, and nowhere else; its model and hints narrow
        // further. The exhausted answer is then computed over what was allowed.
        var count = _pool.Backends.Count;
        var tried = affinity.Pinned is { } pinned ? TriedBackends.AllExcept(count, pinned.Index) : new TriedBackends(count);
        var drained = _anyDrained && affinity.Pinned is null && ExcludeDrained(ref tried);
        model?.Route?.ExcludeOthers(ref tried);
        var hinted = RoutingHints.Apply(hints, _pool.Backends, ref tried, out var noFailover);
        var route = new RequestRoute(partition, model?.Route, cost, affinity.Pinned is not null || hinted || drained ? tried.Copy() : null);

        // Soft affinity: the key's backend, only while it is available and allowed.
        var sticky = affinity.Preferred is { } preferred && !tried.Contains(preferred.Index) &&
                     _pool.Availability.IsAvailable(preferred, _timeProvider.GetUtcNow(), route.PartitionOn(preferred))
            ? preferred
            : null;
        return new RequestPlan(route, tried, model, affinity, sticky, noFailover, count);
    }

    /// <summary>
    /// A drained backend takes no new request: it is left out before the first attempt, and out of the exhausted
    /// answer too — it never comes back by time. Only a request pinned to it (above) still goes there.
    /// </summary>
    private bool ExcludeDrained(ref TriedBackends tried)
    {
        var any = false;
        foreach (var backend in _pool.Backends)
        {
            if (backend.Drained)
            {
                tried.Add(backend.Index);
                any = true;
            }
        }

        return any;
    }
}
