using System.Net;

namespace Polly.PriorityRouting.Benchmarks;

/// <summary>
/// A transport that answers every request with a fresh 200 and a small server-sent-event body, as a chat backend
/// does: a wrapped body cannot be cached, so each request gets its own answer in both variants of the comparison.
/// </summary>
public sealed class FreshBodyBackendHandler : HttpMessageHandler
{
    private static readonly byte[] Body = "data: {\"delta\":\"hi\"}\n\n"u8.ToArray();

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var content = new ByteArrayContent(Body);
        content.Headers.TryAddWithoutValidation("Content-Type", "text/event-stream");
        return Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK) { Content = content, RequestMessage = request });
    }
}
