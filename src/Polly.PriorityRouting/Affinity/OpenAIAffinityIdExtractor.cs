namespace Polly.PriorityRouting;

/// <summary>
/// The ids of the OpenAI and Azure OpenAI APIs (<c>/v1/…</c>, <c>/openai/v1/…</c>, <c>/openai/…?api-version=…</c>): stored
/// responses, conversations, files, batches, vector stores, containers, Assistants threads and assistants, in paths
/// (<c>/responses/{id}</c>, …) and JSON bodies (<c>previous_response_id</c>, <c>file_id</c>, …); and encrypted
/// reasoning items sent back in a Responses <c>input</c>.
/// </summary>
/// <remarks>
/// The default <see cref="AffinityOptions.IdExtractor"/>. A request whose path names none of these collections costs one
/// scan of its path and allocates nothing.
/// </remarks>
public sealed class OpenAIAffinityIdExtractor : AffinityIdExtractor
{
    private OpenAIAffinityIdExtractor()
    {
    }

    /// <summary>Gets the one instance: it holds no state.</summary>
    public static OpenAIAffinityIdExtractor Instance { get; } = new();

    /// <inheritdoc/>
    public override AffinityRequest Extract(HttpRequestMessage request) => AffinityRequestParser.Parse(request);

    /// <inheritdoc/>
    /// <remarks>
    /// Given the body the strategy read (a custom extractor delegating here), it uses that read's parse; any other span
    /// is parsed now.
    /// </remarks>
    public override AffinityRequest ExtractFromBody(HttpRequestMessage request, ReadOnlySpan<byte> body, AffinityRequest fromRequest)
        => AffinityRequestParser.ParseBody(RequestBody.FactsOf(request, body) ?? RequestBodyFacts.Scan(body), fromRequest);
}
