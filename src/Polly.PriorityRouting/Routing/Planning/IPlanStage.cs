namespace Polly.PriorityRouting;

/// <summary>
/// One stage of a request's plan. Stages run in a fixed order (see <see cref="RequestPlanner"/>), each narrowing the
/// one set of backends the request may use, or answering it without any backend; a later stage never widens what an
/// earlier one closed.
/// </summary>
internal interface IPlanStage
{
    /// <summary>Applies the stage to a request.</summary>
    /// <param name="request">What the request says (read once, before the stages).</param>
    /// <param name="disallowed">The backends the request may not use: a stage only adds to it.</param>
    /// <returns>Whether the stage narrowed the set, preferred a backend, or answered.</returns>
    PlanStep Apply(in RequestFacts request, ref BackendSet disallowed);
}
