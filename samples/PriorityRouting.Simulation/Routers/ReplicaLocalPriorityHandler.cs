using System.Globalization;
using System.Net;

namespace PriorityRouting.Simulation.Routers;

/// <summary>
/// A port of the Python package <c>openai_priority_loadbalancer</c>'s transport, as the baseline it is: random choice
/// among the available backends of the best tier; 429 and &gt;= 500 mark a backend unavailable for its
/// <c>Retry-After</c> (whole seconds), else 10 seconds; the request moves on at once; when nothing is left, a synthetic
/// 429 whose <c>Retry-After</c> is the soonest recovery. State lives in the handler, so per replica.
/// </summary>
internal sealed class ReplicaLocalPriorityHandler : DelegatingHandler
{
    private static readonly TimeSpan DefaultCooldown = TimeSpan.FromSeconds(10);

    private readonly SimulatedBackendSpec[] _backends;
    private readonly DateTimeOffset[] _unavailableUntil;
    private readonly TimeProvider _time;
    private readonly Random _random;

    public ReplicaLocalPriorityHandler(IEnumerable<SimulatedBackendSpec> backends, TimeProvider time, Random random, HttpMessageHandler transport)
        : base(transport)
    {
        _backends = [.. backends];
        _unavailableUntil = new DateTimeOffset[_backends.Length];
        _time = time;
        _random = random;
    }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var tried = new bool[_backends.Length];
        while (true)
        {
            var now = _time.GetUtcNow();
            var chosen = ChooseBackend(tried, now);
            if (chosen < 0)
            {
                return AllThrottled(now, request);
            }

            tried[chosen] = true;
            var attempt = new HttpRequestMessage(request.Method, new Uri(_backends[chosen].Address, request.RequestUri!.PathAndQuery)) { Content = request.Content };
            foreach (var header in request.Headers.NonValidated)
            {
                attempt.Headers.TryAddWithoutValidation(header.Key, header.Value);
            }

            var response = await base.SendAsync(attempt, cancellationToken).ConfigureAwait(false);
            if (response.StatusCode != HttpStatusCode.TooManyRequests && (int)response.StatusCode < 500)
            {
                return response;
            }

            _unavailableUntil[chosen] = now + RetryAfterWholeSeconds(response);
            response.Dispose();
        }
    }

    private int ChooseBackend(bool[] tried, DateTimeOffset now)
    {
        var bestPriority = int.MaxValue;
        var candidates = 0;
        for (var i = 0; i < _backends.Length; i++)
        {
            if (tried[i] || _unavailableUntil[i] > now)
            {
                continue;
            }

            if (_backends[i].Priority < bestPriority)
            {
                bestPriority = _backends[i].Priority;
                candidates = 0;
            }

            if (_backends[i].Priority == bestPriority)
            {
                candidates++;
            }
        }

        if (candidates == 0)
        {
            return -1;
        }

        var pick = _random.Next(candidates);
        for (var i = 0; i < _backends.Length; i++)
        {
            if (!tried[i] && _unavailableUntil[i] <= now && _backends[i].Priority == bestPriority && pick-- == 0)
            {
                return i;
            }
        }

        return -1;
    }

    private static TimeSpan RetryAfterWholeSeconds(HttpResponseMessage response)
        => response.Headers.TryGetValues("Retry-After", out var values) &&
           int.TryParse(values.First(), NumberStyles.None, CultureInfo.InvariantCulture, out var seconds)
            ? TimeSpan.FromSeconds(seconds)
            : DefaultCooldown;

    private HttpResponseMessage AllThrottled(DateTimeOffset now, HttpRequestMessage request)
    {
        var soonest = _unavailableUntil.Min() - now;
        var response = new HttpResponseMessage(HttpStatusCode.TooManyRequests) { RequestMessage = request };
        response.Headers.TryAddWithoutValidation(
            "Retry-After",
            Math.Max(0, (long)Math.Ceiling(soonest.TotalSeconds)).ToString(CultureInfo.InvariantCulture));
        return response;
    }
}
