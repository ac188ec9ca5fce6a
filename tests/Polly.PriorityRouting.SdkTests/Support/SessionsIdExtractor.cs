namespace Polly.PriorityRouting.SdkTests.Support;

/// <summary>
/// A custom extractor for the made-up sessions API of <see cref="FakeStatefulOpenAIBackend"/>:
/// <c>POST /api/sessions</c> creates a session, <c>/api/sessions/{id}/…</c> refers to it, <c>DELETE /api/sessions/{id}</c>
/// deletes it. Every other request is left to the OpenAI rules.
/// </summary>
/// <param name="fromLocation">Whether the created id is read from the <c>Location</c> header rather than the body's <c>sessionId</c>.</param>
internal sealed class SessionsIdExtractor(bool fromLocation) : AffinityIdExtractor
{
    public static readonly AffinityIdKind Session = new("session", TimeSpan.FromHours(1));

    private const string Sessions = "/api/sessions";

    public override AffinityRequest Extract(HttpRequestMessage request)
    {
        var path = request.RequestUri is { IsAbsoluteUri: true } uri ? uri.AbsolutePath : string.Empty;
        if (!path.StartsWith(Sessions, StringComparison.Ordinal))
        {
            return OpenAIAffinityIdExtractor.Instance.Extract(request);
        }

        var rest = path.AsSpan(Sessions.Length).Trim('/');
        if (rest.IsEmpty)
        {
            return request.Method == HttpMethod.Post
                ? new AffinityRequest { Creates = Session, CreatedIdProperty = fromLocation ? null : "sessionId" }
                : default;
        }

        var slash = rest.IndexOf('/');
        var id = (slash < 0 ? rest : rest[..slash]).ToString();
        return new AffinityRequest
        {
            Referenced = new AffinityId(id, Session),
            DeletesReferenced = slash < 0 && request.Method == HttpMethod.Delete,
        };
    }

    public override AffinityRequest ExtractFromBody(HttpRequestMessage request, ReadOnlySpan<byte> body, AffinityRequest fromRequest)
        => OpenAIAffinityIdExtractor.Instance.ExtractFromBody(request, body, fromRequest);

    public override string? ReadCreatedId(HttpResponseMessage response, AffinityRequest request)
        => fromLocation && response.Headers.Location is { } location ? location.OriginalString[(location.OriginalString.LastIndexOf('/') + 1)..] : null;
}
