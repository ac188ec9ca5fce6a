namespace Polly.PriorityRouting;

/// <summary>
/// Reads the ids of server-side state from requests and answers of one API, for hard affinity: which id a request refers
/// to (it then goes to the backend that holds it), which it deletes, and which kind of id its answer creates (learned
/// from that answer and pinned to the backend that gave it).
/// </summary>
/// <remarks>
/// <para>
/// The built-in <see cref="OpenAIAffinityIdExtractor"/> knows the OpenAI and Azure OpenAI APIs. Derive from this class
/// for another API, and set it in <see cref="AffinityOptions.IdExtractor"/>; to keep the OpenAI shapes too, delegate the
/// requests you do not recognise to <see cref="OpenAIAffinityIdExtractor.Instance"/>.
/// </para>
/// <para>
/// Implementations are called on every request, concurrently: they must be thread-safe, cheap for requests that carry
/// no id (return <see langword="default"/> without allocating), and never throw — bad input means "no id". Ids that are
/// not <see cref="AffinityId.IsValid"/> are ignored.
/// </para>
/// </remarks>
public abstract class AffinityIdExtractor
{
    /// <summary>
    /// Reads what a request means for affinity from its method, URI, headers and options. Set
    /// <see cref="AffinityRequest.ReadsBody"/> to be called again with its body through <see cref="ExtractFromBody"/>.
    /// </summary>
    /// <param name="request">The caller's request; its body, if any, is buffered and must not be consumed here.</param>
    /// <returns>What the request refers to, deletes and creates; <see langword="default"/> for nothing.</returns>
    public abstract AffinityRequest Extract(HttpRequestMessage request);

    /// <summary>
    /// Completes what <see cref="Extract"/> found with the request's body, when it asked for it.
    /// </summary>
    /// <param name="request">The caller's request.</param>
    /// <param name="body">
    /// The whole body, as the caller sent it (at most 64 MB, <see cref="OpenAIRequestCost.MaxBodyBytes"/>; larger bodies
    /// are not read): the one copy of it that the model map, the token estimate and affinity share.
    /// </param>
    /// <param name="fromRequest">What <see cref="Extract"/> returned for the request.</param>
    /// <returns>What the request refers to, deletes and creates. The default returns <paramref name="fromRequest"/>.</returns>
    public virtual AffinityRequest ExtractFromBody(HttpRequestMessage request, ReadOnlySpan<byte> body, AffinityRequest fromRequest) => fromRequest;

    /// <summary>
    /// Reads the id a successful answer created from its headers (for example <c>Location</c>), before its body is read.
    /// </summary>
    /// <param name="response">The successful answer to a request whose <see cref="AffinityRequest.Creates"/> is set.</param>
    /// <param name="request">What the request meant for affinity.</param>
    /// <returns>
    /// The created id, pinned before the answer is handed back; or <see langword="null"/> (the default) to read it from
    /// the body instead, as it flows (<see cref="AffinityRequest.CreatedIdProperty"/>).
    /// </returns>
    public virtual string? ReadCreatedId(HttpResponseMessage response, AffinityRequest request) => null;
}
