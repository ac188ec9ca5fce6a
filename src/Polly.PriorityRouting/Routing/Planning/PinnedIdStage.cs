namespace Polly.PriorityRouting;

/// <summary>
/// Stage 2, hard affinity: a request that refers to an id goes to the backend holding it and nowhere else; an id whose
/// backend is no longer configured is answered 404. In the plan only when affinity is on.
/// </summary>
internal sealed class PinnedIdStage : IPlanStage
{
    public static readonly PinnedIdStage Instance = new();

    public PlanStep Apply(in RequestFacts request, ref BackendSet disallowed)
    {
        var affinity = request.Affinity;
        if (affinity.MissingBackend is not null)
        {
            return PlanStep.AnswerWith(AffinityRouter.NotConfigured(affinity, request.Original));
        }

        if (affinity.Pinned is not { } pinned)
        {
            return PlanStep.Unchanged;
        }

        disallowed.AddAllExcept(pinned.Index);
        return PlanStep.Narrowing;
    }
}
