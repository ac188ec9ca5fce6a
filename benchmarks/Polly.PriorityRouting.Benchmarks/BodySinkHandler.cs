using System.Net;

namespace Polly.PriorityRouting.Benchmarks;

/// <summary>
/// A transport that sends the request body nowhere, as a socket would send it: the body is serialised in full (so a
/// rewritten body's cost is measured), then a cached 200 answers.
/// </summary>
public sealed class BodySinkHandler : HttpMessageHandler
{
    private static readonly HttpResponseMessage CachedOk = new(HttpStatusCode.OK);

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (request.Content is { } content)
        {
            await content.CopyToAsync(Stream.Null, cancellationToken).ConfigureAwait(false);
        }

        return CachedOk;
    }
}
