namespace Polly.PriorityRouting;

/// <summary>What one <see cref="IPlanStage"/> did to a request's plan.</summary>
internal readonly struct PlanStep
{
    private PlanStep(bool isNarrowed, RoutedBackend? preferred, HttpResponseMessage? answer, ModelFallbackStage? fallbacks = null)
    {
        IsNarrowed = isNarrowed;
        Preferred = preferred;
        Answer = answer;
        Fallbacks = fallbacks;
    }

    /// <summary>Gets the step of a stage that changed nothing.</summary>
    public static PlanStep Unchanged => default;

    /// <summary>Gets the step of a stage that closed backends the request's exhausted answer must not count.</summary>
    public static PlanStep Narrowing => new(isNarrowed: true, null, null);

    /// <summary>Gets a value indicating whether the exhausted answer must be computed over the allowed backends only.</summary>
    public bool IsNarrowed { get; }

    /// <summary>Gets the backend to try first while it is the best choice (soft affinity), or <see langword="null"/>.</summary>
    public RoutedBackend? Preferred { get; }

    /// <summary>Gets the answer given without calling any backend, or <see langword="null"/>.</summary>
    public HttpResponseMessage? Answer { get; }

    /// <summary>Gets the stage that gives the request's next models their allowed sets, or <see langword="null"/>: the request stays on its model.</summary>
    public ModelFallbackStage? Fallbacks { get; }

    public static PlanStep FallBackWith(ModelFallbackStage fallbacks) => new(isNarrowed: false, null, null, fallbacks);

    public static PlanStep Prefer(RoutedBackend backend) => new(isNarrowed: false, backend, null);

    public static PlanStep AnswerWith(HttpResponseMessage answer) => new(isNarrowed: false, null, answer);
}
