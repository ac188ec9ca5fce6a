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
    private readonly bool _keepBodyBytes;

    public RequestPlanner(PriorityRoutingStrategyOptions options, BackendPool pool, RoutingTelemetry telemetry, TimeProvider timeProvider)
    {
        _pool = pool;
        _telemetry = telemetry;
        _timeProvider = timeProvider;
        _partitionKey = options.ThrottlePartitionKey;
        Affinity = options.Affinity is { Enabled: true } affinity
            ? new AffinityRouter(affinity, affinity.Store ?? options.AffinityStoreFromServices ?? InMemoryAffinityStore.Shared, pool.Backends)
            : null;
        _keepBodyBytes = pool.Models is not null || Affinity is { ReadsBodyBytes: true };
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

        // One read of the body, when first asked, for the model, the cost and affinity (none on an outer retry).
        var body = RequestBody.Of(original, _keepBodyBytes);
        var model = _pool.Models is { } models ? ModelRequest.Resolve(models, original, body) : null;
        var cost = _pool.EstimateCost(original, body);
        var hints = PriorityRoutingRequestOptions.Of(original);
        AffinityDecision affinity = default;
        if (Affinity is not null)
        {
            affinity = await Affinity.ResolveAsync(original, body, hints?.AffinityKey, cancellationToken).ConfigureAwait(continueOnCapturedContext);
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
        model?.Route?.ExcludeOthers(ref tried);
        var hinted = RoutingHints.Apply(hints, _pool.Backends, ref tried, out var noFailover);
        var route = new RequestRoute(partition, model?.Route, cost, affinity.Pinned is not null || hinted ? tried.Copy() : null);

        // Soft affinity: the key's backend, only while it is available and allowed.
        var sticky = affinity.Preferred is { } preferred && !tried.Contains(preferred.Index) &&
                     _pool.Availability.IsAvailable(preferred, _timeProvider.GetUtcNow(), route.PartitionOn(preferred))
            ? preferred
            : null;
        return new RequestPlan(route, tried, model, affinity, sticky, noFailover, count);
    }
}
