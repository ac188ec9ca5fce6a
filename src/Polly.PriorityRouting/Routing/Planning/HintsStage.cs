namespace Polly.PriorityRouting;

/// <summary>
/// Stage 3, the caller's hints (<see cref="PriorityRoutingHints.OnlyBackends"/>, <see cref="PriorityRoutingHints.ExcludedBackends"/>,
/// <see cref="PriorityRoutingHints.MaxPriority"/>): they narrow what the model and a pinned id allow, never widen it.
/// </summary>
/// <remarks>
/// <see cref="PriorityRoutingHints.NoFailover"/> is not a narrowing known in advance: see <see cref="RequestPlan"/>.
/// <see cref="PriorityRoutingHints.Background"/> narrows nothing either: it is the request's class, carried on its route
/// (<see cref="HeadroomOf"/>).
/// </remarks>
internal sealed class HintsStage(IReadOnlyList<RoutedBackend> backends) : IPlanStage
{
    /// <summary>
    /// Returns the share of each budget a request must leave free (<see cref="RequestRoute.Headroom"/>): the pipeline's
    /// <paramref name="backgroundHeadroom"/> for a background request, 0 for a foreground one.
    /// </summary>
    public static double HeadroomOf(PriorityRoutingHints? hints, double backgroundHeadroom)
        => hints is { Background: true } ? backgroundHeadroom : 0;

    public PlanStep Apply(in RequestFacts request, ref BackendSet disallowed)
    {
        if (request.Hints is not { } hints || (hints.OnlyBackends is null && hints.ExcludedBackends is null && hints.MaxPriority is null))
        {
            return PlanStep.Unchanged;
        }

        foreach (var backend in backends)
        {
            if ((hints.OnlyBackends is { } only && !only.Contains(backend.Name, StringComparer.Ordinal)) ||
                (hints.ExcludedBackends is { } excluded && excluded.Contains(backend.Name, StringComparer.Ordinal)) ||
                (hints.MaxPriority is { } maxPriority && backend.Priority > maxPriority))
            {
                disallowed.Add(backend.Index);
            }
        }

        return PlanStep.Narrowing;
    }
}
