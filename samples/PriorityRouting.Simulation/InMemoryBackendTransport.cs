using System.Globalization;
using System.Net;
using PriorityRouting.Samples;

namespace PriorityRouting.Simulation;

/// <summary>
/// The network of the simulation: routes a request to the backend named by its host, with no sockets and no real time.
/// A throttled backend answers 429 with the headers Azure OpenAI sends.
/// </summary>
internal sealed class InMemoryBackendTransport : HttpMessageHandler
{
    private readonly Dictionary<string, SimulatedBackend> _backendsByHost;
    private readonly TimeProvider _time;
    private readonly DateTimeOffset _measureFrom;

    public InMemoryBackendTransport(IEnumerable<SimulatedBackend> backends, TimeProvider time, DateTimeOffset measureFrom)
    {
        _backendsByHost = backends.ToDictionary(b => b.Spec.Address.Host, StringComparer.OrdinalIgnoreCase);
        _time = time;
        _measureFrom = measureFrom;
    }

    // A handler holds nothing here, so the client factory disposing it (it is shared by every replica) is harmless.
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        => Task.FromResult(Send(request, cancellationToken));

    protected override HttpResponseMessage Send(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (!_backendsByHost.TryGetValue(request.RequestUri!.Host, out var backend))
        {
            return new HttpResponseMessage(HttpStatusCode.BadGateway) { RequestMessage = request };
        }

        var now = _time.GetUtcNow();
        var measured = now >= _measureFrom;
        if (backend.Bucket.TryAcquire(now, out var retryAfter))
        {
            if (measured)
            {
                backend.Ok++;
            }

            // Like Azure OpenAI, every answer reports the budget left and when it refills; routers may read them.
            var ok = new HttpResponseMessage(HttpStatusCode.OK) { RequestMessage = request };
            ok.Headers.TryAddWithoutValidation("x-ratelimit-remaining-requests", backend.Bucket.Remaining.ToString(CultureInfo.InvariantCulture));
            ok.Headers.TryAddWithoutValidation(
                "x-ratelimit-reset-requests",
                backend.Bucket.UntilReplenishment(now).TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture) + "s");
            return ok;
        }

        if (measured)
        {
            backend.Throttled++;
        }

        var response = new HttpResponseMessage(HttpStatusCode.TooManyRequests) { RequestMessage = request };
        foreach (var (name, value) in AzureOpenAiThrottleHeaders.For(retryAfter))
        {
            response.Headers.TryAddWithoutValidation(name, value);
        }

        return response;
    }
}
