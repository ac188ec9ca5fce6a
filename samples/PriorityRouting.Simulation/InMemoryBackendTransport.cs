using System.Globalization;
using System.Net;
using PriorityRouting.Samples;

namespace PriorityRouting.Simulation;

/// <summary>
/// The network of the simulation: routes a request to the backend named by its host, with no sockets and no real time.
/// A backend admits a request by its cost (one request, or its estimated tokens: prompt plus <c>max_tokens</c>, as
/// Azure OpenAI does), reports on every answer the budget left, its limit and when it refills, and answers 429 with
/// the headers Azure OpenAI sends when the request does not fit.
/// </summary>
internal sealed class InMemoryBackendTransport : HttpMessageHandler
{
    private readonly Dictionary<string, SimulatedBackend> _backendsByHost;
    private readonly TimeProvider _time;
    private readonly DateTimeOffset _measureFrom;
    private readonly DateTimeOffset _measureUntil;
    private readonly bool _tokens;
    private readonly SpillTracker _spill;

    public InMemoryBackendTransport(IReadOnlyList<SimulatedBackend> backends, TimeProvider time, DateTimeOffset measureFrom, DateTimeOffset measureUntil, bool tokens)
    {
        _measureUntil = measureUntil;
        _backendsByHost = backends.ToDictionary(b => b.Spec.Address.Host, StringComparer.OrdinalIgnoreCase);
        _time = time;
        _measureFrom = measureFrom;
        _tokens = tokens;
        _spill = new SpillTracker(backends);
    }

    public SpillTracker Spill => _spill;

    // A handler holds nothing here, so the client factory disposing it (it is shared by every replica) is harmless.
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        => Task.FromResult(Send(request, cancellationToken));

    protected override HttpResponseMessage Send(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (!_backendsByHost.TryGetValue(request.RequestUri!.Host, out var backend))
        {
            return new HttpResponseMessage(HttpStatusCode.BadGateway) { RequestMessage = request };
        }

        var cost = request.Headers.NonValidated.TryGetValues(SimulatedRequests.CostHeader, out var values) &&
                   long.TryParse(values.ToString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var parsed)
            ? parsed
            : 1;
        var now = _time.GetUtcNow();
        var measured = now >= _measureFrom && now < _measureUntil;
        var bucket = backend.Bucket;
        if (bucket.TryAcquire(now, out var retryAfter, cost))
        {
            if (measured)
            {
                backend.Ok++;
                backend.OkUnits += cost;
                _spill.Served(backend, cost, now);
            }

            // Like Azure OpenAI, every answer reports the budget left, its limit and when it refills; routers may read them.
            var ok = new HttpResponseMessage(HttpStatusCode.OK) { RequestMessage = request };
            AddBudget(ok, bucket, now);
            return ok;
        }

        if (measured)
        {
            backend.Throttled++;
        }

        var response = new HttpResponseMessage(HttpStatusCode.TooManyRequests) { RequestMessage = request };
        if (_tokens)
        {
            response.Headers.TryAddWithoutValidation("retry-after", Math.Max(1, (long)Math.Ceiling(retryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture));
            response.Headers.TryAddWithoutValidation("retry-after-ms", ((long)Math.Ceiling(retryAfter.TotalMilliseconds)).ToString(CultureInfo.InvariantCulture));
            AddBudget(response, bucket, now);
        }
        else
        {
            foreach (var (name, value) in AzureOpenAiThrottleHeaders.For(retryAfter))
            {
                response.Headers.TryAddWithoutValidation(name, value);
            }

            response.Headers.TryAddWithoutValidation("x-ratelimit-limit-requests", bucket.Limit.ToString(CultureInfo.InvariantCulture));
        }

        return response;
    }

    private void AddBudget(HttpResponseMessage response, VirtualTokenBucket bucket, DateTimeOffset now)
    {
        var kind = _tokens ? "tokens" : "requests";
        response.Headers.TryAddWithoutValidation("x-ratelimit-remaining-" + kind, bucket.Remaining.ToString(CultureInfo.InvariantCulture));
        response.Headers.TryAddWithoutValidation("x-ratelimit-limit-" + kind, bucket.Limit.ToString(CultureInfo.InvariantCulture));
        response.Headers.TryAddWithoutValidation(
            "x-ratelimit-reset-" + kind,
            bucket.UntilReplenishment(now).TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture) + "s");
    }
}
