namespace Polly.PriorityRouting;

/// <summary>
/// Stage 5, soft affinity: the backend a request's key was last served by is tried first — if the earlier stages allow
/// it. Not a narrowing: the preference yields at acquisition to a better tier that is available, and ends when the
/// backend cannot be admitted or fails (see <see cref="RequestPlan.TryAcquire"/>). In the plan only when affinity is on.
/// </summary>
internal sealed class SoftPreferenceStage : IPlanStage
{
    public static readonly SoftPreferenceStage Instance = new();

    public PlanStep Apply(in RequestFacts request, ref BackendSet disallowed)
        => request.Affinity.Preferred is { } preferred && !disallowed.Contains(preferred.Index)
            ? PlanStep.Prefer(preferred)
            : PlanStep.Unchanged;
}
