using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Polly.Telemetry;

namespace Polly.PriorityRouting;

/// <summary>
/// Everything one strategy tells the world: Polly's telemetry events, its own logs, the metrics and the user's callbacks.
/// Each fact is reported once per channel, with the same severity in Polly's log and ours (docs/observability.md).
/// </summary>
internal sealed partial class RoutingTelemetry
{
    private readonly ResilienceStrategyTelemetry _polly;
    private readonly ILogger _logger;
    private readonly PriorityRoutingMetrics _metrics;
    private readonly Func<OnBackendUnavailableArguments, ValueTask>? _onBackendUnavailable;
    private readonly Func<OnBackendsExhaustedArguments, ValueTask>? _onBackendsExhausted;

    public RoutingTelemetry(
        PriorityRoutingStrategyOptions options,
        ResilienceStrategyTelemetry polly,
        string? pipelineName,
        string? pipelineInstanceName)
    {
        _polly = polly;
        _logger = options.LoggerFactory?.CreateLogger(PriorityRoutingMetrics.MeterName) ?? NullLogger.Instance;
        _metrics = PriorityRoutingMetrics.For(options.MeterFactory);
        _onBackendUnavailable = options.OnBackendUnavailable;
        _onBackendsExhausted = options.OnBackendsExhausted;

        var tags = new TagList { { PriorityRoutingTags.PipelineName, pipelineName } };
        if (!string.IsNullOrEmpty(pipelineInstanceName))
        {
            tags.Add(PriorityRoutingTags.PipelineInstance, pipelineInstanceName);
        }

        tags.Add(PriorityRoutingTags.StrategyName, options.Name);
        Tags = tags;
    }

    /// <summary>Gets the pipeline and strategy tags every measurement carries.</summary>
    public TagList Tags { get; }

    public PriorityRoutingMetrics Metrics => _metrics;

    /// <summary>One attempt ended: Polly's <c>ExecutionAttempt</c> (Warning when handled, as Polly's retry does) and the attempts counter.</summary>
    public void AttemptEnded(
        ResilienceContext context,
        RoutedBackend backend,
        Outcome<HttpResponseMessage> outcome,
        int attemptNumber,
        TimeSpan duration,
        bool handled,
        string outcomeTag,
        bool background)
    {
        _polly.Report(
            new ResilienceEvent(handled ? ResilienceEventSeverity.Warning : ResilienceEventSeverity.Information, PriorityRoutingConstants.ExecutionAttemptEvent),
            context,
            outcome,
            new ExecutionAttemptArguments(attemptNumber, duration, handled));

        if (outcome.Result is { } answer && (_metrics.Spillovers.Enabled || _metrics.Utilization.Enabled))
        {
            ProvisionedSignals.Record(answer.Headers, _metrics.Spillovers, _metrics.Utilization, WithBackend(backend));
        }

        if (!_metrics.Attempts.Enabled)
        {
            return;
        }

        var tags = WithBackend(backend);
        tags.Add(PriorityRoutingTags.Outcome, outcomeTag);
        if (outcome.Result is { } response)
        {
            tags.Add(PriorityRoutingTags.StatusCode, (int)response.StatusCode);
        }

        AddClass(ref tags, background);
        _metrics.Attempts.Add(1, tags);
    }

    public void FailingOver(RoutedBackend from, RoutedBackend to, int attemptNumber)
    {
        Log.FailingOver(_logger, from.Name, from.Priority, to.Name, to.Priority, attemptNumber);
        if (_metrics.Failovers.Enabled)
        {
            _metrics.Failovers.Add(1, WithBackend(from));
        }
    }

    /// <summary>
    /// A backend (or a partition of it) was marked. Logged, reported to Polly and to the callback only when it left
    /// rotation: concurrent requests that see the same backend fail renew the mark quietly.
    /// </summary>
    public async ValueTask BackendMarkedAsync(
        ResilienceContext context,
        Outcome<HttpResponseMessage> outcome,
        RoutedBackend backend,
        BackendVerdict verdict,
        int attemptNumber,
        bool proactive)
    {
        var tags = WithBackend(backend);
        tags.Add(PriorityRoutingTags.Reason, PriorityRoutingTags.ToTagValue(verdict.Reason));
        _metrics.MarkedUnavailable.Add(1, tags);

        if (verdict.StoreError is { } storeError)
        {
            Log.StoreWriteFailed(_logger, backend.Name, storeError);
        }

        var cooldownMs = (long)verdict.Cooldown.TotalMilliseconds;
        if (!verdict.LeftRotation)
        {
            Log.BackendUnavailabilityRenewed(_logger, backend.Name, backend.Priority, verdict.Reason, cooldownMs);
            return;
        }

        // A spent budget is routine (Information); a backend that failed, or was ejected, is news (Warning).
        var severity = proactive ? ResilienceEventSeverity.Information : ResilienceEventSeverity.Warning;
        if (proactive)
        {
            Log.BudgetExhausted(_logger, backend.Name, backend.Priority, cooldownMs);
        }
        else if (verdict.Ejections > 0)
        {
            Log.BackendEjected(_logger, backend.Name, backend.Priority, cooldownMs, verdict.Ejections, verdict.Cause);
        }
        else
        {
            Log.BackendUnavailable(_logger, backend.Name, backend.Priority, verdict.Reason, cooldownMs);
        }

        var arguments = new OnBackendUnavailableArguments(
            context, outcome, backend.Name, backend.Priority, verdict.Reason, verdict.Cooldown, attemptNumber);
        _polly.Report(new ResilienceEvent(severity, PriorityRoutingConstants.OnBackendUnavailableEvent), context, outcome, arguments);
        if (_onBackendUnavailable is not null)
        {
            await _onBackendUnavailable(arguments).ConfigureAwait(context.ContinueOnCapturedContext);
        }
    }

    /// <summary>
    /// Nothing was left: answering 429 is routine for a saturated deployment (Information); 503 — every backend failing
    /// — is news (Warning). Never Error: the caller gets a clear answer to act on.
    /// </summary>
    public async ValueTask ExhaustedAsync(
        ResilienceContext context,
        Outcome<HttpResponseMessage> outcome,
        HttpStatusCode statusCode,
        TimeSpan retryAfter,
        int attemptCount,
        bool background)
    {
        var tags = Tags;
        tags.Add(PriorityRoutingTags.StatusCode, (int)statusCode);
        AddClass(ref tags, background);
        _metrics.Exhausted.Add(1, tags);

        var throttled = statusCode == HttpStatusCode.TooManyRequests;
        var retryAfterMs = (long)Math.Ceiling(retryAfter.TotalMilliseconds);
        Log.BackendsExhausted(_logger, throttled ? LogLevel.Information : LogLevel.Warning, (int)statusCode, retryAfterMs, attemptCount);

        var arguments = new OnBackendsExhaustedArguments(context, statusCode, retryAfter, attemptCount);
        _polly.Report(
            new ResilienceEvent(throttled ? ResilienceEventSeverity.Information : ResilienceEventSeverity.Warning, PriorityRoutingConstants.OnBackendsExhaustedEvent),
            context,
            outcome,
            arguments);

        if (_onBackendsExhausted is not null)
        {
            await _onBackendsExhausted(arguments).ConfigureAwait(context.ContinueOnCapturedContext);
        }
    }

    /// <summary>
    /// The shared budget refused an attempt on <paramref name="backend"/>: counted by backend and class, and tagged
    /// when the refusal set room aside for the caller in a later refill (<paramref name="claimed"/>: the caller was
    /// promised that refill). Not by partition, which may come from the caller (a header): one series each would grow
    /// without bound.
    /// </summary>
    public void ReservationRefused(RoutedBackend backend, bool background, bool claimed)
    {
        if (!_metrics.ReservationsRefused.Enabled)
        {
            return;
        }

        var tags = WithBackend(backend);
        AddClass(ref tags, background);
        if (claimed)
        {
            tags.Add(PriorityRoutingTags.ReservationClaimed, true);
        }

        _metrics.ReservationsRefused.Add(1, tags);
    }

    /// <summary>Tags a background request's measurement with its class; a foreground one's is left as it was.</summary>
    private static void AddClass(ref TagList tags, bool background)
    {
        if (background)
        {
            tags.Add(PriorityRoutingTags.RequestClass, PriorityRoutingTags.BackgroundClass);
        }
    }

    private TagList WithBackend(RoutedBackend backend)
    {
        var tags = Tags;
        tags.Add(PriorityRoutingTags.BackendName, backend.Name);
        tags.Add(PriorityRoutingTags.BackendPriority, backend.Priority);
        return tags;
    }
}
