namespace Polly.PriorityRouting;

/// <summary>
/// Stage 4, drained backends (<see cref="RoutedBackend.Drained"/>): they take no new work, except a request whose id
/// they hold (stage 2 pinned it there: nothing else can serve it). In the plan only when a backend is drained.
/// </summary>
internal sealed class DrainStage(IReadOnlyList<RoutedBackend> backends) : IPlanStage
{
    public PlanStep Apply(in RequestFacts request, ref BackendSet disallowed)
    {
        if (request.Affinity.Pinned is not null)
        {
            return PlanStep.Unchanged;
        }

        var narrowed = false;
        foreach (var backend in backends)
        {
            if (backend.Drained)
            {
                disallowed.Add(backend.Index);
                narrowed = true;
            }
        }

        return narrowed ? PlanStep.Narrowing : PlanStep.Unchanged;
    }
}
