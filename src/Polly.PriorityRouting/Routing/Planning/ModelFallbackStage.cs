namespace Polly.PriorityRouting;

/// <summary>
/// Stage 6, model fallbacks (<see cref="PriorityRoutingStrategyOptions.ModelFallbacks"/>,
/// <see cref="PriorityRoutingStrategyOptions.ContextWindowFallbacks"/>): hands the plan of a request that may fall back
/// the allowed set of each next model. In the plan only when some model has a fallback.
/// </summary>
/// <remarks>
/// A request stays on its model when it is pinned to a backend by its id (nothing else holds it), asks for
/// <see cref="PriorityRoutingHints.NoFailover"/> (sent once) or <see cref="PriorityRoutingHints.NoModelFallback"/>, or
/// when its model has no fallback. A fallback model's backends are narrowed by the same hints and drained backends as
/// the requested model's: the per-backend stages run again over the next model (see <see cref="DisallowedFor"/>).
/// </remarks>
internal sealed class ModelFallbackStage(int backendCount, IPlanStage[] narrowingStages) : IPlanStage
{
    public PlanStep Apply(in RequestFacts request, ref BackendSet disallowed)
        => request.Model?.Route is { } route &&
           (route.ModelChain.Length > 1 || route.ContextWindowChain.Length > 0) &&
           request.Affinity.Pinned is null &&
           request.Hints is not { NoFailover: true } and not { NoModelFallback: true }
            ? PlanStep.FallBackWith(this)
            : PlanStep.Unchanged;

    /// <summary>
    /// Returns the backends a request may not use on <paramref name="model"/>: those that do not serve it, and those its
    /// hints or draining close.
    /// </summary>
    /// <param name="model">A model of the request's chain.</param>
    /// <param name="request">The request.</param>
    /// <param name="narrowed">Whether hints or draining closed some backends (the exhausted answer counts the others only).</param>
    public BackendSet DisallowedFor(ModelRoute model, in RequestFacts request, out bool narrowed)
    {
        var disallowed = new BackendSet(backendCount);
        model.ExcludeOthers(ref disallowed);
        narrowed = false;
        foreach (var stage in narrowingStages)
        {
            narrowed |= stage.Apply(request, ref disallowed).IsNarrowed;
        }

        return disallowed;
    }
}
