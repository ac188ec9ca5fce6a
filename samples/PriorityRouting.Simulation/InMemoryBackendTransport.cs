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
/// <remarks>
/// When the scenario's completions take time (<see cref="SimulationScenario.Completions"/>), an admitted request's
/// answer arrives later: a streamed one at its first token, another whole at its end. How long is the request's own
/// (drawn from its place in the arrival stream), the same on every backend and attempt that serves it. Its tokens are counted when it is
/// admitted, and the budget its answer reports is the one at admission (the backend's gateway decides then), so an
/// answer that arrives seconds later tells the state of seconds ago, and says nothing of what was admitted since. A
/// caller that gives up while the answer is on its way (a timeout) gets nothing back, and its tokens stay spent.
/// A 429 answers at once.
/// </remarks>
internal sealed class InMemoryBackendTransport : HttpMessageHandler
{
    private readonly Dictionary<string, SimulatedBackend> _backendsByHost;
    private readonly TimeProvider _time;
    private readonly DateTimeOffset _measureFrom;
    private readonly DateTimeOffset _measureUntil;
    private readonly bool _tokens;
    private readonly SpillTracker _spill;
    private readonly CompletionTimes? _completions;
    private readonly VirtualDelays? _delays;
    private readonly int _seed;
    private readonly bool _budgetAtAdmission;

    public InMemoryBackendTransport(IReadOnlyList<SimulatedBackend> backends, TimeProvider time, DateTimeOffset measureFrom, DateTimeOffset measureUntil, bool tokens)
        : this(backends, time, measureFrom, measureUntil, tokens, completions: null, delays: null, seed: 0)
    {
    }

    public InMemoryBackendTransport(
        IReadOnlyList<SimulatedBackend> backends,
        TimeProvider time,
        DateTimeOffset measureFrom,
        DateTimeOffset measureUntil,
        bool tokens,
        CompletionTimes? completions,
        VirtualDelays? delays,
        int seed,
        bool budgetAtAdmission = true)
    {
        _budgetAtAdmission = budgetAtAdmission;
        _completions = completions;
        _delays = delays;
        _seed = seed;
        _measureUntil = measureUntil;
        _backendsByHost = backends.ToDictionary(b => b.Spec.Address.Host, StringComparer.OrdinalIgnoreCase);
        _time = time;
        _measureFrom = measureFrom;
        _tokens = tokens;
        _spill = new SpillTracker(backends);
    }

    public SpillTracker Spill => _spill;

    /// <summary>
    /// Gets a value indicating whether answers carry the budget headers (the default); <see langword="false"/>: none,
    /// and a 429 carries only <c>Retry-After</c> in whole seconds (see <see cref="SimulationScenario.ReportsBudgets"/>).
    /// </summary>
    public bool ReportsBudgets { get; init; } = true;

    // A handler holds nothing here, so the client factory disposing it (it is shared by every replica) is harmless.
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        => _completions is null ? Task.FromResult(Send(request, cancellationToken)) : SendInFlightAsync(request, cancellationToken);

    private async Task<HttpResponseMessage> SendInFlightAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var response = Send(request, cancellationToken);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            return response;
        }

        // The request's own length (see CompletionTimes.For), not the next draw of the backend's: the order in which
        // backends admit attempts would otherwise decide which request gets the long tail.
        var (headers, completion) = _completions!.For(_seed, SimulatedRequests.SequenceOf(request));
        try
        {
            await _delays!.Delay(headers, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            response.Dispose();
            throw;
        }

        if (!_budgetAtAdmission && ReportsBudgets && _backendsByHost.TryGetValue(request.RequestUri!.Host, out var backend))
        {
            // The other reading of the headers: the budget when the answer leaves the backend.
            foreach (var name in BudgetHeaders)
            {
                response.Headers.Remove(name);
            }

            var now = _time.GetUtcNow();
            backend.Bucket.Advance(now);
            AddBudget(response, backend.Bucket, now);
        }

        // The rest of a streamed answer: the caller has its answer when the last token arrives.
        response.Headers.TryAddWithoutValidation(
            SimulatedRequests.RemainingMillisecondsHeader,
            (completion - headers).TotalMilliseconds.ToString("0.###", CultureInfo.InvariantCulture));
        return response;
    }

    protected override HttpResponseMessage Send(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (!_backendsByHost.TryGetValue(request.RequestUri!.Host, out var backend))
        {
            return new HttpResponseMessage(HttpStatusCode.BadGateway) { RequestMessage = request };
        }

        var cost = SimulatedRequests.CostOf(request);
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
            ok.Headers.TryAddWithoutValidation(SimulatedRequests.AdmittedAtHeader, now.UtcTicks.ToString(CultureInfo.InvariantCulture));
            if (ReportsBudgets)
            {
                AddBudget(ok, bucket, now);
            }

            return ok;
        }

        if (measured)
        {
            backend.Throttled++;
        }

        var response = new HttpResponseMessage(HttpStatusCode.TooManyRequests) { RequestMessage = request };
        if (!ReportsBudgets)
        {
            response.Headers.TryAddWithoutValidation("retry-after", WholeSeconds(retryAfter));
        }
        else if (_tokens)
        {
            response.Headers.TryAddWithoutValidation("retry-after", WholeSeconds(retryAfter));
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

    private static string WholeSeconds(TimeSpan retryAfter) => Math.Max(1, (long)Math.Ceiling(retryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture);

    private string[] BudgetHeaders => _tokens
        ? ["x-ratelimit-remaining-tokens", "x-ratelimit-limit-tokens", "x-ratelimit-reset-tokens"]
        : ["x-ratelimit-remaining-requests", "x-ratelimit-limit-requests", "x-ratelimit-reset-requests"];

    private void AddBudget(HttpResponseMessage response, IVirtualBudget bucket, DateTimeOffset now)
    {
        var kind = _tokens ? "tokens" : "requests";
        response.Headers.TryAddWithoutValidation("x-ratelimit-remaining-" + kind, bucket.Remaining.ToString(CultureInfo.InvariantCulture));
        response.Headers.TryAddWithoutValidation("x-ratelimit-limit-" + kind, bucket.Limit.ToString(CultureInfo.InvariantCulture));
        response.Headers.TryAddWithoutValidation(
            "x-ratelimit-reset-" + kind,
            bucket.UntilReplenishment(now).TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture) + "s");
    }
}
