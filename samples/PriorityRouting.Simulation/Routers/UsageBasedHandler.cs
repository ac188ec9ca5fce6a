using System.Net;

namespace PriorityRouting.Simulation.Routers;

/// <summary>One replica's LiteLLM-style usage-based router over the shared <see cref="UsageLedger"/>.</summary>
internal sealed class UsageBasedHandler(UsageLedger ledger, TimeProvider time, HttpMessageHandler transport) : DelegatingHandler(transport)
{
    private static readonly TimeSpan CooldownTime = TimeSpan.FromSeconds(5);

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var cost = SimulatedRequests.CostOf(request);
        var tried = new bool[ledger.Backends.Length];
        while (true)
        {
            var now = time.GetUtcNow();
            ledger.Roll(now);
            var chosen = Choose(tried, cost, now);
            if (chosen < 0)
            {
                // LiteLLM's "No deployments available": no Retry-After (its issue #27823).
                return new HttpResponseMessage(HttpStatusCode.TooManyRequests) { RequestMessage = request };
            }

            tried[chosen] = true;
            ledger.UsedThisMinute[chosen] += cost;
            var attempt = new HttpRequestMessage(request.Method, new Uri(ledger.Backends[chosen].Address, request.RequestUri!.PathAndQuery)) { Content = request.Content };
            foreach (var header in request.Headers.NonValidated)
            {
                attempt.Headers.TryAddWithoutValidation(header.Key, header.Value);
            }

            var response = await base.SendAsync(attempt, cancellationToken).ConfigureAwait(false);
            if (response.StatusCode != HttpStatusCode.TooManyRequests && (int)response.StatusCode < 500)
            {
                return response;
            }

            ledger.CooledDownUntil[chosen] = now + CooldownTime;
            response.Dispose();
        }
    }

    private int Choose(bool[] tried, long cost, DateTimeOffset now)
    {
        var best = -1;
        for (var i = 0; i < ledger.Backends.Length; i++)
        {
            if (tried[i] || ledger.CooledDownUntil[i] > now || ledger.UsedThisMinute[i] + cost > ledger.LimitPerMinute(i))
            {
                continue;
            }

            if (best >= 0 && ledger.Backends[i].Priority > ledger.Backends[best].Priority)
            {
                break;
            }

            if (best < 0 || ledger.UsedThisMinute[i] < ledger.UsedThisMinute[best])
            {
                best = i;
            }
        }

        return best;
    }
}
