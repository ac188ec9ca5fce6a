namespace Polly.PriorityRouting;

/// <summary>
/// What one JSON request body says for routing, found in one <see cref="System.Text.Json.Utf8JsonReader"/> pass
/// (<c>RequestBodyFacts.Scan.cs</c>): its model, its estimated cost, and what it means for affinity.
/// </summary>
/// <remarks>
/// The body is read as the services' JSON parsers read it: escaped names and values are unescaped, the last of
/// duplicated properties counts, and properties that mean something only at the top level are read only there. A body
/// that is not a JSON object, or not valid JSON, says nothing (<see cref="None"/>): the backend will refuse it anyway.
/// A struct: kept inside the <see cref="RequestBody"/> that read it, no allocation of its own.
/// </remarks>
internal readonly partial record struct RequestBodyFacts
{
    /// <summary>A body that says nothing: no model, cost 0, no id and no key.</summary>
    public static readonly RequestBodyFacts None;

    /// <summary>
    /// Gets the top-level <c>"model"</c> when it is a string, else <see langword="null"/>; empty when it was not asked for
    /// (<c>readModel</c>).
    /// </summary>
    public string? Model { get; init; }

    /// <summary>Gets where the token of <see cref="Model"/>'s value starts in the body (its opening quote).</summary>
    public int ModelStart { get; init; }

    /// <summary>Gets where the token of <see cref="Model"/>'s value ends in the body (past its closing quote).</summary>
    public int ModelEnd { get; init; }

    /// <summary>Gets the tokens the request is estimated to cost, as <see cref="OpenAIRequestCost"/> describes it.</summary>
    public long EstimatedTokens { get; init; }

    /// <summary>
    /// Gets the id of server-side state the body refers to: a top-level <c>previous_response_id</c>, else
    /// <c>conversation</c>, else <c>thread_id</c>, else <c>assistant_id</c>; else the first file, vector store, container
    /// or reasoning item id anywhere outside <c>metadata</c>.
    /// </summary>
    public AffinityId Referenced { get; init; }

    /// <summary>Gets the top-level <c>prompt_cache_key</c>, else <c>user</c>: the soft-affinity key.</summary>
    public string? StickyKey { get; init; }

    /// <summary>Gets a value indicating whether the body has a top-level <c>"store": false</c>.</summary>
    public bool Unstored { get; init; }
}
