using System.Net;

namespace Polly.PriorityRouting.Benchmarks;

/// <summary>
/// The transport of every benchmark: no sockets, a cached 200 answer, so that what is measured is the pipeline only.
/// </summary>
/// <remarks>
/// A host listed in <see cref="ThrottledHosts"/> answers a fresh 429 (the strategy disposes the answers it discards,
/// so those cannot be cached) with <c>retry-after-ms: 0</c>: the backend is marked with a deadline of "now", which has
/// already passed at the next request, so every request pays exactly one failover.
/// </remarks>
public sealed class InMemoryBackendHandler : HttpMessageHandler
{
    // Never disposed by callers in the benchmarks, so one object can be returned to every request.
    private static readonly HttpResponseMessage CachedOk = new(HttpStatusCode.OK);

    public ISet<string> ThrottledHosts { get; } = new HashSet<string>(StringComparer.OrdinalIgnoreCase);

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (ThrottledHosts.Count > 0 && ThrottledHosts.Contains(request.RequestUri!.Host))
        {
            var throttled = new HttpResponseMessage(HttpStatusCode.TooManyRequests);
            throttled.Headers.TryAddWithoutValidation("retry-after-ms", "0");
            return Task.FromResult(throttled);
        }

        return Task.FromResult(CachedOk);
    }
}
