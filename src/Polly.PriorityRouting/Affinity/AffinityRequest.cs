namespace Polly.PriorityRouting;

/// <summary>
/// What one request means for affinity, as an <see cref="AffinityIdExtractor"/> reads it: the id it refers to (which
/// routes it), whether it deletes that id, the kind of id its answer creates, and its soft-affinity key.
/// </summary>
/// <remarks>The default value means nothing: the request is routed as if affinity were off.</remarks>
public readonly record struct AffinityRequest
{
    /// <summary>The JSON property that holds the created id unless <see cref="CreatedIdProperty"/> says otherwise.</summary>
    public const string DefaultCreatedIdProperty = "id";

    /// <summary>Gets the id the request refers to: it goes to the backend that holds that id, and nowhere else.</summary>
    public AffinityId Referenced { get; init; }

    /// <summary>Gets a value indicating whether a successful answer deletes <see cref="Referenced"/> (its pin is forgotten).</summary>
    public bool DeletesReferenced { get; init; }

    /// <summary>
    /// Gets the kind of id a successful answer creates, or <see langword="null"/>. The id is learned from the answer
    /// (<see cref="AffinityIdExtractor.ReadCreatedId"/>, else the top-level <see cref="CreatedIdProperty"/> of a JSON
    /// body or of a stream's first event) and pinned to the backend that answered.
    /// </summary>
    public AffinityIdKind? Creates { get; init; }

    /// <summary>
    /// Gets the top-level JSON property of the answer that holds the created id; <see langword="null"/> for
    /// <see cref="DefaultCreatedIdProperty"/>.
    /// </summary>
    public string? CreatedIdProperty { get; init; }

    /// <summary>
    /// Gets a second top-level JSON property of the answer that holds an id the same request creates (of the same
    /// kind), or <see langword="null"/>: the parent a nested create makes on the way (<c>thread_id</c> of
    /// <c>POST /threads/runs</c>).
    /// </summary>
    public string? CreatedParentIdProperty { get; init; }

    /// <summary>Gets the request's soft-affinity key (the body's <c>prompt_cache_key</c>, …), if it has no hard pin.</summary>
    public string? StickyKey { get; init; }

    /// <summary>
    /// Gets a value indicating whether the extractor needs the request's body: it is then called again, with the
    /// buffered body, through <see cref="AffinityIdExtractor.ExtractFromBody"/>.
    /// </summary>
    public bool ReadsBody { get; init; }

    /// <summary>
    /// Gets a value indicating whether the created response is not stored (<c>"store": false</c>): its id cannot be
    /// referenced later and is not pinned; its reasoning items still are.
    /// </summary>
    internal bool CreatesUnstored { get; init; }

    /// <summary>Gets a value indicating whether the answer's reasoning items (<c>rs_…</c>) are learned too.</summary>
    internal bool LearnsReasoningItems { get; init; }

    /// <summary>Gets a value indicating whether the request means nothing for affinity.</summary>
    internal bool IsEmpty => Referenced.IsEmpty && Creates is null && StickyKey is null;
}
