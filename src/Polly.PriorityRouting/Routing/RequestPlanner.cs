namespace Polly.PriorityRouting;

/// <summary>
/// Plans each request once, before its first attempt: reads what the request says (its throttle partition, its body
/// made replayable, its model, its estimated cost, its hints, what affinity knows of it), then runs the plan's stages
/// in their order of precedence, each narrowing the one set of backends the request may use.
/// </summary>
/// <remarks>
/// The precedence, written here once: <b>model → pinned id → hints → drained → soft preference → model fallbacks</b>. A later stage
/// never widens what an earlier one closed; a stage that answers (an unknown model, an id whose backend is gone) ends
/// the plan. Stages for features that are off are not in the list.
/// </remarks>
internal sealed class RequestPlanner
{
    private readonly BackendPool _pool;
    private readonly Func<HttpRequestMessage, string?>? _partitionKey;
    private readonly bool _keepBodyBytes;
    private readonly IPlanStage[] _stages;
    private readonly int _maxAttempts;
    private readonly double _backgroundHeadroom;
    private readonly bool _claims;

    public RequestPlanner(PriorityRoutingStrategyOptions options, BackendPool pool, RoutingTelemetry telemetry, TimeProvider timeProvider)
    {
        _pool = pool;
        _partitionKey = options.ThrottlePartitionKey;
        Affinity = options.Affinity is { Enabled: true } affinity
            ? new AffinityRouter(affinity, affinity.Store ?? options.AffinityStoreFromServices ?? InMemoryAffinityStore.SharedOn(timeProvider), pool.Backends)
            : null;
        _keepBodyBytes = pool.Models is not null || Affinity is { ReadsBodyBytes: true };

        var stages = new List<IPlanStage>();
        if (pool.Models is { } models)
        {
            stages.Add(new ModelStage(models, telemetry));
        }

        if (Affinity is not null)
        {
            stages.Add(PinnedIdStage.Instance);
        }

        // Hints and draining narrow every model of a request alike: the fallback stage runs them again for each next one.
        var narrowing = new List<IPlanStage> { new HintsStage(pool.Backends) };
        if (pool.Backends.Any(backend => backend.Drained))
        {
            narrowing.Add(new DrainStage(pool.Backends));
        }

        stages.AddRange(narrowing);
        if (Affinity is not null)
        {
            stages.Add(SoftPreferenceStage.Instance);
        }

        if (pool.Models is { HasFallbacks: true })
        {
            stages.Add(new ModelFallbackStage(pool.Backends.Count, [.. narrowing]));
        }

        _stages = [.. stages];
        _maxAttempts = Math.Min(options.MaxAttempts ?? int.MaxValue, pool.Backends.Count);
        _backgroundHeadroom = options.BackgroundHeadroom;
        _claims = pool.BudgetAdmission.SharesReservations;
    }

    /// <summary>Gets the affinity router, or <see langword="null"/> when affinity is off.</summary>
    public AffinityRouter? Affinity { get; }

    /// <summary>
    /// Plans a request. The caller's own failures (a body that cannot be read, a partition function that throws) are
    /// thrown as theirs, before any backend is involved; the body then replays on every attempt, an outer retry's too.
    /// </summary>
    /// <remarks>
    /// Synchronous, with no state machine, while nothing must be awaited: a body already replayable (bytes, a string, a
    /// form, or an outer retry's) and nothing affinity must look up in its store — the common request.
    /// </remarks>
    public ValueTask<RequestPlan> PlanAsync(HttpRequestMessage original, bool continueOnCapturedContext, CancellationToken cancellationToken)
    {
        var partition = _partitionKey?.Invoke(original);
        var preparing = AttemptRequest.PrepareContentAsync(original, cancellationToken);
        return preparing.IsCompletedSuccessfully
            ? PlanReplayable(original, partition, continueOnCapturedContext, cancellationToken)
            : PlanAfterBufferingAsync(original, partition, preparing, continueOnCapturedContext, cancellationToken);
    }

    private async ValueTask<RequestPlan> PlanAfterBufferingAsync(
        HttpRequestMessage original,
        string? partition,
        ValueTask preparing,
        bool continueOnCapturedContext,
        CancellationToken cancellationToken)
    {
        await preparing.ConfigureAwait(continueOnCapturedContext);
        return await PlanReplayable(original, partition, continueOnCapturedContext, cancellationToken).ConfigureAwait(continueOnCapturedContext);
    }

    /// <summary>Reads what the request says, its body now replayable, then runs the stages.</summary>
    private ValueTask<RequestPlan> PlanReplayable(HttpRequestMessage original, string? partition, bool continueOnCapturedContext, CancellationToken cancellationToken)
    {
        // One read of the body, when first asked, for the model, the cost and affinity (none on an outer retry).
        var body = RequestBody.Of(original, _keepBodyBytes);
        var model = _pool.Models is { } models ? ModelRequest.Resolve(models, original, body) : null;
        var cost = _pool.Costs.Estimate(original, body);
        var hints = PriorityRoutingRequestOptions.Of(original);
        if (Affinity is null)
        {
            return new(Plan(original, partition, model, cost, hints, affinity: default));
        }

        var resolving = Affinity.ResolveAsync(original, body, hints?.AffinityKey, cancellationToken);
        return resolving.IsCompletedSuccessfully
            ? new(Plan(original, partition, model, cost, hints, resolving.Result))
            : PlanAfterAffinityAsync(original, partition, model, cost, hints, resolving, continueOnCapturedContext);
    }

    private async ValueTask<RequestPlan> PlanAfterAffinityAsync(
        HttpRequestMessage original,
        string? partition,
        ModelRequest? model,
        long cost,
        PriorityRoutingHints? hints,
        ValueTask<AffinityDecision> resolving,
        bool continueOnCapturedContext)
        => Plan(original, partition, model, cost, hints, await resolving.ConfigureAwait(continueOnCapturedContext));

    /// <summary>Runs the stages over what the request says.</summary>
    private RequestPlan Plan(
        HttpRequestMessage original,
        string? partition,
        ModelRequest? model,
        long cost,
        PriorityRoutingHints? hints,
        AffinityDecision affinity)
    {
        var facts = new RequestFacts(original, model, affinity, hints);
        var disallowed = new BackendSet(_pool.Backends.Count);
        var narrowed = false;
        RoutedBackend? preferred = null;
        ModelFallbackStage? fallbacks = null;
        foreach (var stage in _stages)
        {
            var step = stage.Apply(facts, ref disallowed);
            if (step.Answer is { } answer)
            {
                return RequestPlan.AnswerWith(answer);
            }

            narrowed |= step.IsNarrowed;
            preferred = step.Preferred ?? preferred;
            fallbacks = step.Fallbacks ?? fallbacks;
        }

        // The exhausted answer is computed over what was allowed; the request's class travels with it.
        var headroom = HintsStage.HeadroomOf(hints, _backgroundHeadroom);

        // Only a foreground request claims room in a shared budget's refill (a background one never does, even with no
        // headroom to tell it apart): its fingerprint, read only when the pool shares reservations.
        var claimant = _claims && hints is not { Background: true } ? RequestFingerprint.Of(original) : 0;
        var route = new RequestRoute(partition, model?.Route, cost, narrowed ? disallowed.Copy() : null, headroom: headroom, claimant: claimant);
        return new RequestPlan(route, disallowed, facts, preferred, _maxAttempts, fallbacks);
    }
}
