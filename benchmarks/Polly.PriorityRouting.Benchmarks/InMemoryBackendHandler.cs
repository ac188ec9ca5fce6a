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

    // Azure OpenAI's budget headers, plenty left: every answer is read into the budget view and admits the next request.
    private static readonly HttpResponseMessage CachedOkWithBudgets = CreateOkWithBudgets();

    public ISet<string> ThrottledHosts { get; } = new HashSet<string>(StringComparer.OrdinalIgnoreCase);

    /// <summary>Gets or sets a value indicating whether 200 answers carry <c>x-ratelimit-*</c> budget headers.</summary>
    public bool BudgetHeaders { get; set; }

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (ThrottledHosts.Count > 0 && ThrottledHosts.Contains(request.RequestUri!.Host))
        {
            var throttled = new HttpResponseMessage(HttpStatusCode.TooManyRequests);
            throttled.Headers.TryAddWithoutValidation("retry-after-ms", "0");
            return Task.FromResult(throttled);
        }

        return Task.FromResult(BudgetHeaders ? CachedOkWithBudgets : CachedOk);
    }

    private static HttpResponseMessage CreateOkWithBudgets()
    {
        var ok = new HttpResponseMessage(HttpStatusCode.OK);
        ok.Headers.TryAddWithoutValidation("x-ratelimit-remaining-tokens", "149000");
        ok.Headers.TryAddWithoutValidation("x-ratelimit-limit-tokens", "150000");
        ok.Headers.TryAddWithoutValidation("x-ratelimit-reset-tokens", "6s");
        ok.Headers.TryAddWithoutValidation("x-ratelimit-remaining-requests", "899");
        ok.Headers.TryAddWithoutValidation("x-ratelimit-limit-requests", "900");
        ok.Headers.TryAddWithoutValidation("x-ratelimit-reset-requests", "6s");
        return ok;
    }
}
