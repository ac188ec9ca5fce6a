namespace Polly.PriorityRouting;

/// <summary>
/// Names the logical model that served an answer in <c>x-priority-routing-model</c>, so that a caller sees a fallback.
/// In the list only when the pipeline has model maps or fallbacks.
/// </summary>
internal sealed class ModelHeaderObserver : IAnswerObserver
{
    public static readonly ModelHeaderObserver Instance = new();

    public ValueTask<AnswerVerdict> ObserveAsync(in ReturnedAnswer answer)
    {
        if (answer.ServedModel is { } model)
        {
            // Without validation: a name the caller sent must not make its own answer throw.
            answer.Response.Headers.Remove(PriorityRoutingConstants.ModelHeader);
            answer.Response.Headers.TryAddWithoutValidation(PriorityRoutingConstants.ModelHeader, model);
        }

        return new(AnswerVerdict.Accepted);
    }
}
