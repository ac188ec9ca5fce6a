namespace Polly.PriorityRouting;

/// <summary>What one <see cref="IPlanStage"/> did to a request's plan.</summary>
internal readonly struct PlanStep
{
    private PlanStep(bool isNarrowed, RoutedBackend? preferred, HttpResponseMessage? answer)
    {
        IsNarrowed = isNarrowed;
        Preferred = preferred;
        Answer = answer;
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

    public static PlanStep Prefer(RoutedBackend backend) => new(isNarrowed: false, backend, null);

    public static PlanStep AnswerWith(HttpResponseMessage answer) => new(isNarrowed: false, null, answer);
}
