using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Polly.Telemetry;
using Polly.Timeout;

// GetRequestMessage/SetRequestMessage are experimental in Microsoft.Extensions.Http.Resilience. They are the documented
// way for a strategy to swap the request of an attempt (ResilienceHandler re-reads it per attempt), which is exactly
// what routing needs: suppressed on purpose, here only.
#pragma warning disable EXTEXP0001

namespace Polly.PriorityRouting;

/// <summary>
/// Sends each attempt to the best available backend, takes a failing backend out of rotation for the time it asked
/// for, moves on at once, and answers 429/503 with the soonest recovery time when nothing is left.
/// </summary>
internal sealed partial class PriorityRoutingResilienceStrategy : ResilienceStrategy<HttpResponseMessage>, IDisposable
{
    private readonly BackendSelector _selector;
    private readonly TimeProvider _timeProvider;
    private readonly ResilienceStrategyTelemetry _telemetry;
    private readonly TimeSpan _defaultCooldown;
    private readonly TimeSpan _maxCooldown;
    private readonly int _maxAttempts;
    private readonly Func<PriorityRoutingPredicateArguments, ValueTask<bool>> _shouldHandle;
    private readonly Func<OnBackendUnavailableArguments, ValueTask>? _onBackendUnavailable;
    private readonly Func<OnBackendsExhaustedArguments, ValueTask>? _onBackendsExhausted;
    private readonly bool _deferCredentials;
    private readonly ILogger _logger;
    private readonly PriorityRoutingMetrics _metrics;
    private readonly PriorityRoutingGaugeSource _gaugeSource;
    private readonly TagList _tags;
    private readonly OutlierDetector? _detector;
    private readonly OutlierEjectionOptions _ejection;
    private readonly bool _proactiveThrottling;
    private readonly Func<HttpRequestMessage, string?>? _partitionKey;

    public PriorityRoutingResilienceStrategy(
        PriorityRoutingStrategyOptions options,
        TimeProvider timeProvider,
        ResilienceStrategyTelemetry telemetry,
        string? pipelineName = null,
        string? pipelineInstanceName = null)
    {
        var store = options.StateStore ?? InMemoryBackendStateStore.Shared;

        // A snapshot: options objects are mutable and may be rebound by a reload.
        _ejection = new OutlierEjectionOptions
        {
            Enabled = options.OutlierEjection.Enabled,
            ConsecutiveFailures = options.OutlierEjection.ConsecutiveFailures,
            BaseEjectionTime = options.OutlierEjection.BaseEjectionTime,
            MaxEjectionTime = options.OutlierEjection.MaxEjectionTime,
        };
        _detector = _ejection.Enabled ? OutlierDetector.For(store) : null;
        _proactiveThrottling = options.ProactiveThrottling;
        _partitionKey = options.ThrottlePartitionKey;
        _selector = new BackendSelector([.. options.Backends], store, options.Randomizer, _detector);
        _timeProvider = timeProvider;
        _telemetry = telemetry;
        _defaultCooldown = options.DefaultCooldown;
        _maxCooldown = options.MaxCooldown;
        _maxAttempts = Math.Min(options.MaxAttempts ?? int.MaxValue, _selector.Backends.Count);
        _shouldHandle = options.ShouldHandle;
        _onBackendUnavailable = options.OnBackendUnavailable;
        _onBackendsExhausted = options.OnBackendsExhausted;
        _deferCredentials = options.DeferCredentials;
        _logger = options.LoggerFactory?.CreateLogger(PriorityRoutingMetrics.MeterName) ?? NullLogger.Instance;

        _tags = new TagList
        {
            { PriorityRoutingTags.PipelineName, pipelineName },
            { PriorityRoutingTags.PipelineInstance, pipelineInstanceName },
            { PriorityRoutingTags.StrategyName, options.Name },
        };
        _metrics = PriorityRoutingMetrics.For(options.MeterFactory);
        _gaugeSource = new PriorityRoutingGaugeSource(_selector, timeProvider, _tags);
        _metrics.Register(_gaugeSource);
    }

    internal BackendSelector Selector => _selector;

    /// <summary>Called by Polly when the pipeline is disposed (e.g. replaced by an options reload).</summary>
    public void Dispose() => _metrics.Unregister(_gaugeSource);

    protected override async ValueTask<Outcome<HttpResponseMessage>> ExecuteCore<TState>(
        Func<ResilienceContext, TState, ValueTask<Outcome<HttpResponseMessage>>> callback,
        ResilienceContext context,
        TState state)
    {
        var original = context.GetRequestMessage();
        if (original is null)
        {
            return Outcome.FromException<HttpResponseMessage>(new InvalidOperationException(
                "The priority routing strategy needs the request message in the resilience context. Use it in a pipeline " +
                "added with AddResilienceHandler, or call ResilienceContext.SetRequestMessage before executing."));
        }

        string? partition;
        try
        {
            partition = _partitionKey?.Invoke(original);
        }
        catch (Exception e)
        {
            return Outcome.FromException<HttpResponseMessage>(e);
        }

        var tried = new TriedBackends(_selector.Backends.Count);
        var attempt = 0;
        var throttledInThisCall = false;
        RoutedBackend? failedBackend = null;
        try
        {
            while (true)
            {
                if (context.CancellationToken.IsCancellationRequested)
                {
                    return Outcome.FromException<HttpResponseMessage>(new OperationCanceledException(context.CancellationToken));
                }

                var now = _timeProvider.GetUtcNow();
                var backend = attempt < _maxAttempts ? _selector.SelectNext(tried, now, partition) : null;
                if (backend is null)
                {
                    return await ExhaustedAsync(context, original, attempt, throttledInThisCall, now, partition).ConfigureAwait(context.ContinueOnCapturedContext);
                }

                tried.Add(backend.Index);
                var isProbe = false;
                if (_detector is not null && !_detector.TryAdmit(backend.Name, now, out isProbe))
                {
                    // Its ejection just ended and another request is probing it: leave it to the probe.
                    continue;
                }

                if (attempt == 0 && _maxAttempts > 1)
                {
                    try
                    {
                        await AttemptRequest.PrepareContentAsync(original, context.CancellationToken)
                            .ConfigureAwait(context.ContinueOnCapturedContext);
                    }
                    catch (Exception e)
                    {
                        // Reading the caller's body failed: no backend is at fault.
                        return Outcome.FromException<HttpResponseMessage>(e);
                    }
                }

                if (failedBackend is not null)
                {
                    RecordFailover(failedBackend, backend, attempt);
                }

                var outcome = await SendAttemptAsync(callback, context, state, original, backend).ConfigureAwait(context.ContinueOnCapturedContext);

                if (outcome.Exception is OperationCanceledException && context.CancellationToken.IsCancellationRequested)
                {
                    // The caller gave up: the backend did nothing wrong and must not be marked.
                    RecordAttempt(backend, outcome, "canceled");
                    if (isProbe)
                    {
                        _detector!.ReleaseProbe(backend.Name);
                    }

                    return outcome;
                }

                var predicateArguments = new PriorityRoutingPredicateArguments(context, outcome, backend.Name, backend.Priority);
                bool handled;
                try
                {
                    handled = await _shouldHandle(predicateArguments).ConfigureAwait(context.ContinueOnCapturedContext);
                }
                catch when (isProbe)
                {
                    // A throwing predicate must not leave the probe slot taken: the backend would never be tried again.
                    _detector!.ReleaseProbe(backend.Name);
                    throw;
                }

                if (!handled)
                {
                    RecordAttempt(backend, outcome, PriorityRoutingTags.ReturnedOutcome);
                    await OnReturnedAsync(context, outcome, backend, attempt, partition, isProbe).ConfigureAwait(context.ContinueOnCapturedContext);
                    return outcome;
                }

                var reason = await MarkUnavailableAsync(context, outcome, backend, attempt, partition).ConfigureAwait(context.ContinueOnCapturedContext);
                throttledInThisCall |= reason == BackendUnavailableReason.Throttled;
                failedBackend = backend;
                attempt++;
            }
        }
        finally
        {
            // An outer strategy (retry) executes us again: it must find the caller's request, not our last attempt's.
            context.SetRequestMessage(original);
        }
    }

    private async ValueTask<Outcome<HttpResponseMessage>> SendAttemptAsync<TState>(
        Func<ResilienceContext, TState, ValueTask<Outcome<HttpResponseMessage>>> callback,
        ResilienceContext context,
        TState state,
        HttpRequestMessage original,
        RoutedBackend backend)
    {
        string? bearerToken = null;
        if (backend.BearerTokenProvider is { } tokenProvider)
        {
            try
            {
                bearerToken = await tokenProvider(context.CancellationToken).ConfigureAwait(context.ContinueOnCapturedContext);
            }
            catch (Exception e)
            {
                // The token source failed: the outcome goes through ShouldHandle like any other failure.
                return Outcome.FromException<HttpResponseMessage>(e);
            }
        }

        context.SetRequestMessage(AttemptRequest.Create(original, backend, bearerToken, _deferCredentials));
        return await callback(context, state).ConfigureAwait(context.ContinueOnCapturedContext);
    }

    /// <summary>
    /// An outcome that goes back to the caller: the backend answered, so it is healthy for outlier detection; and if
    /// the answer says a rate-limit budget is spent, the backend leaves rotation before anyone pays a 429.
    /// </summary>
    private async ValueTask OnReturnedAsync(
        ResilienceContext context,
        Outcome<HttpResponseMessage> outcome,
        RoutedBackend backend,
        int attempt,
        string? partition,
        bool isProbe)
    {
        if (outcome.Result is not { } response)
        {
            if (isProbe)
            {
                _detector!.ReleaseProbe(backend.Name);
            }

            return;
        }

        _detector?.RecordHealthy(backend.Name);
        if (!_proactiveThrottling ||
            !ThrottleSignalParser.TryGetExhaustedBudgetReset(response.Headers, _maxCooldown, out var cooldown) ||
            cooldown <= TimeSpan.Zero)
        {
            return;
        }

        var now = _timeProvider.GetUtcNow();
        var key = backend.GetThrottleKey(partition);
        Log.BudgetExhausted(_logger, backend.Name, backend.Priority, (long)cooldown.TotalMilliseconds);
        RecordUnavailable(backend, BackendUnavailableReason.Throttled);
        await WriteAsync(context, backend, key, new BackendUnavailability(now + cooldown, BackendUnavailableReason.Throttled), now)
            .ConfigureAwait(context.ContinueOnCapturedContext);
        await ReportUnavailableAsync(
            context,
            new OnBackendUnavailableArguments(context, outcome, backend.Name, backend.Priority, BackendUnavailableReason.Throttled, cooldown, attempt))
            .ConfigureAwait(context.ContinueOnCapturedContext);
    }

    private async ValueTask<BackendUnavailableReason> MarkUnavailableAsync(
        ResilienceContext context,
        Outcome<HttpResponseMessage> outcome,
        RoutedBackend backend,
        int attempt,
        string? partition)
    {
        var now = _timeProvider.GetUtcNow();
        var (reason, cooldown) = Classify(outcome, now);
        RecordAttempt(backend, outcome, PriorityRoutingTags.ToTagValue(reason));
        var ejected = false;
        if (_detector is not null)
        {
            if (reason is BackendUnavailableReason.ServerError or BackendUnavailableReason.TransportError or BackendUnavailableReason.Timeout)
            {
                if (_detector.RecordFailure(backend.Name, now, _ejection) is { } ejection)
                {
                    Log.BackendEjected(_logger, backend.Name, backend.Priority, (long)ejection.Duration.TotalMilliseconds, ejection.Ejections, reason);
                    ejected = true;
                    reason = BackendUnavailableReason.Ejected;
                    cooldown = ejection.Duration > cooldown ? ejection.Duration : cooldown;
                }
            }
            else
            {
                // A throttle (or a custom-handled answer) proves the backend is up.
                _detector.RecordHealthy(backend.Name);
            }
        }

        // Failures of the backend itself apply to all its partitions.
        var key = reason == BackendUnavailableReason.Throttled ? backend.GetThrottleKey(partition) : backend.Name;

        // One warning when a backend leaves rotation, not one per concurrent request that sees it fail.
        if (!ejected)
        {
            if (!_selector.IsMarked(key, now))
            {
                Log.BackendUnavailable(_logger, backend.Name, backend.Priority, reason, (long)cooldown.TotalMilliseconds);
            }
            else
            {
                Log.BackendUnavailabilityRenewed(_logger, backend.Name, backend.Priority, reason, (long)cooldown.TotalMilliseconds);
            }
        }

        RecordUnavailable(backend, reason);
        try
        {
            await WriteAsync(context, backend, key, new BackendUnavailability(now + cooldown, reason), now)
                .ConfigureAwait(context.ContinueOnCapturedContext);
            var arguments = new OnBackendUnavailableArguments(
                context, outcome, backend.Name, backend.Priority, reason, cooldown, attempt);
            await ReportUnavailableAsync(context, arguments).ConfigureAwait(context.ContinueOnCapturedContext);
        }
        finally
        {
            // The discarded answer must give its connection back to the pool.
            outcome.Result?.Dispose();
        }

        return reason;
    }

    private async ValueTask ReportUnavailableAsync(ResilienceContext context, OnBackendUnavailableArguments arguments)
    {
        _telemetry.Report(
            new ResilienceEvent(ResilienceEventSeverity.Warning, PriorityRoutingConstants.OnBackendUnavailableEvent),
            context,
            arguments.Outcome,
            arguments);

        if (_onBackendUnavailable is not null)
        {
            await _onBackendUnavailable(arguments).ConfigureAwait(context.ContinueOnCapturedContext);
        }
    }

    private async ValueTask WriteAsync(
        ResilienceContext context,
        RoutedBackend backend,
        string key,
        BackendUnavailability unavailability,
        DateTimeOffset now)
    {
        try
        {
            await _selector.Store.MarkUnavailableAsync(key, unavailability, now, context.CancellationToken)
                .ConfigureAwait(context.ContinueOnCapturedContext);
        }
        catch (Exception e)
        {
            // A failing store never fails a request: this attempt still fails over, later ones may retry the backend.
            // A store that gave up because the caller cancelled is not failing: the loop returns the cancellation next.
            if (!context.CancellationToken.IsCancellationRequested)
            {
                Log.StoreWriteFailed(_logger, backend.Name, e);
            }
        }
    }

    private void RecordUnavailable(RoutedBackend backend, BackendUnavailableReason reason)
    {
        var tags = _tags;
        tags.Add(PriorityRoutingTags.BackendName, backend.Name);
        tags.Add(PriorityRoutingTags.BackendPriority, backend.Priority);
        tags.Add(PriorityRoutingTags.Reason, PriorityRoutingTags.ToTagValue(reason));
        _metrics.BackendsMarkedUnavailable.Add(1, tags);
    }

    private void RecordAttempt(RoutedBackend backend, Outcome<HttpResponseMessage> outcome, string outcomeTag)
    {
        if (!_metrics.Attempts.Enabled)
        {
            return;
        }

        var tags = _tags;
        tags.Add(PriorityRoutingTags.BackendName, backend.Name);
        tags.Add(PriorityRoutingTags.BackendPriority, backend.Priority);
        tags.Add(PriorityRoutingTags.Outcome, outcomeTag);
        if (outcome.Result is { } response)
        {
            tags.Add(PriorityRoutingTags.StatusCode, (int)response.StatusCode);
        }

        _metrics.Attempts.Add(1, tags);
    }

    private void RecordFailover(RoutedBackend from, RoutedBackend to, int attempt)
    {
        Log.FailingOver(_logger, from.Name, from.Priority, to.Name, to.Priority, attempt);
        if (!_metrics.Failovers.Enabled)
        {
            return;
        }

        var tags = _tags;
        tags.Add(PriorityRoutingTags.BackendName, from.Name);
        tags.Add(PriorityRoutingTags.BackendPriority, from.Priority);
        _metrics.Failovers.Add(1, tags);
    }

    private (BackendUnavailableReason Reason, TimeSpan Cooldown) Classify(Outcome<HttpResponseMessage> outcome, DateTimeOffset now)
    {
        if (outcome.Result is not { } response)
        {
            var reason = outcome.Exception switch
            {
                TimeoutRejectedException or OperationCanceledException => BackendUnavailableReason.Timeout,
                HttpRequestException => BackendUnavailableReason.TransportError,
                _ => BackendUnavailableReason.Other,
            };
            return (reason, _defaultCooldown);
        }

        var hasSignal = ThrottleSignalParser.TryGetCooldown(response, now, _maxCooldown, out var cooldown);
        var statusReason = response.StatusCode switch
        {
            HttpStatusCode.TooManyRequests => BackendUnavailableReason.Throttled,
            _ when hasSignal => BackendUnavailableReason.Throttled,
            HttpStatusCode.RequestTimeout => BackendUnavailableReason.Timeout,
            >= HttpStatusCode.InternalServerError => BackendUnavailableReason.ServerError,
            _ => BackendUnavailableReason.Other,
        };
        return (statusReason, hasSignal ? cooldown : _defaultCooldown);
    }

    private async ValueTask<Outcome<HttpResponseMessage>> ExhaustedAsync(
        ResilienceContext context,
        HttpRequestMessage original,
        int attemptCount,
        bool throttledInThisCall,
        DateTimeOffset now,
        string? partition)
    {
        // 429 when throttling is why nothing is left: a pending throttle deadline, or a throttle seen by this call
        // (a backend that said "Retry-After: 0" is free again, yet the call was throttled).
        var (retryAfter, throttled) = _selector.GetExhaustion(now, partition);

        // A deadline written by another pipeline or replica may be far out: never advertise more than this pipeline
        // itself could have set.
        var longest = _ejection.MaxEjectionTime > _maxCooldown ? _ejection.MaxEjectionTime : _maxCooldown;
        if (retryAfter > longest)
        {
            retryAfter = longest;
        }

        var statusCode = throttled || throttledInThisCall ? HttpStatusCode.TooManyRequests : HttpStatusCode.ServiceUnavailable;
        var outcome = Outcome.FromResult(ExhaustedResponse.Create(statusCode, retryAfter, original));

        var tags = _tags;
        tags.Add(PriorityRoutingTags.StatusCode, (int)statusCode);
        _metrics.Exhausted.Add(1, tags);
        Log.BackendsExhausted(_logger, (int)statusCode, (long)Math.Ceiling(retryAfter.TotalMilliseconds), attemptCount);

        var arguments = new OnBackendsExhaustedArguments(context, statusCode, retryAfter, attemptCount);
        _telemetry.Report(
            new ResilienceEvent(ResilienceEventSeverity.Error, PriorityRoutingConstants.OnBackendsExhaustedEvent),
            context,
            outcome,
            arguments);

        if (_onBackendsExhausted is not null)
        {
            await _onBackendsExhausted(arguments).ConfigureAwait(context.ContinueOnCapturedContext);
        }

        return outcome;
    }
}
