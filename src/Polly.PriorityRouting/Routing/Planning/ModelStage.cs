namespace Polly.PriorityRouting;

/// <summary>
/// Stage 1, the model: only the backends that serve the request's model; a model no backend serves is answered 404.
/// In the plan only when the pipeline maps models.
/// </summary>
/// <remarks>
/// Not a narrowing of the exhausted answer: that one is computed over the model's backends already (see
/// <see cref="RequestRoute.Model"/>).
/// </remarks>
internal sealed class ModelStage(ModelCatalog models, RoutingTelemetry telemetry) : IPlanStage
{
    public PlanStep Apply(in RequestFacts request, ref BackendSet disallowed)
    {
        if (request.Model is not { } model)
        {
            return PlanStep.Unchanged;
        }

        if (model.Route is not { } route)
        {
            telemetry.ModelNotFound(model.Name);
            return PlanStep.AnswerWith(ModelNotFoundResponse.Create(request.Original, model.Name, models.Names));
        }

        route.ExcludeOthers(ref disallowed);
        return PlanStep.Unchanged;
    }
}
