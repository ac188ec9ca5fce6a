namespace Polly.PriorityRouting;

/// <summary>Which ids to read from a creating answer as it flows.</summary>
/// <param name="IdProperty">The top-level property that holds the created id, or <see langword="null"/> to read none.</param>
/// <param name="ParentProperty">A second top-level property that holds an id the request creates, or <see langword="null"/>.</param>
/// <param name="ReasoningItems">Whether reasoning item ids (<c>rs_…</c>) are read from the whole answer.</param>
internal readonly record struct AffinityAnswerIds(string? IdProperty, string? ParentProperty = null, bool ReasoningItems = false)
{
    /// <summary>The top-level <c>"id"</c> alone.</summary>
    public static AffinityAnswerIds Id => new(AffinityRequest.DefaultCreatedIdProperty);

    /// <summary>What to read from the answer to <paramref name="request"/>.</summary>
    public static AffinityAnswerIds Of(AffinityRequest request)
        => new(
            request.CreatesUnstored ? null : request.CreatedIdProperty ?? AffinityRequest.DefaultCreatedIdProperty,
            request.CreatedParentIdProperty,
            request.LearnsReasoningItems);
}
