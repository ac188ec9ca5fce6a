using System.Net;
using Polly.Telemetry;

// GetRequestMessage/SetRequestMessage are experimental in Microsoft.Extensions.Http.Resilience. They are the documented
// way for a strategy to swap the request of an attempt (ResilienceHandler re-reads it per attempt), which is exactly
// what routing needs: suppressed on purpose, here only.
#pragma warning disable EXTEXP0001

namespace Polly.PriorityRouting;

/// <summary>
/// Sends each attempt to the best available backend, takes a failing backend out of rotation for the time it asked
/// for, moves on at once, and answers 429/503 with the soonest recovery time when nothing is left.
/// </summary>
/// <remarks>
/// This class is the attempt loop only. The backends' state is owned by <see cref="BackendPool"/>; what is reported
/// to Polly, logs, metrics and callbacks by <see cref="RoutingTelemetry"/>.
/// </remarks>
internal sealed class PriorityRoutingResilienceStrategy : ResilienceStrategy<HttpResponseMessage>, IDisposable
{
    private readonly BackendPool _pool;
    private readonly RoutingTelemetry _telemetry;
    private readonly PriorityRoutingGaugeSource _gauges;
    private readonly TimeProvider _timeProvider;
    private readonly int _maxAttempts;
    private readonly Func<PriorityRoutingPredicateArguments, ValueTask<bool>> _shouldHandle;
    private readonly bool _deferCredentials;
    private readonly RequestPlanner _planner;
    private readonly ResponseBodyWatcher? _bodies;
    private readonly WaitQueue? _queue;

    public PriorityRoutingResilienceStrategy(
        PriorityRoutingStrategyOptions options,
        TimeProvider timeProvider,
        ResilienceStrategyTelemetry telemetry,
        string? pipelineName = null,
        string? pipelineInstanceName = null)
    {
        _pool = new BackendPool(options, options.StateStore ?? InMemoryBackendStateStore.Shared, timeProvider);
        _telemetry = new RoutingTelemetry(options, telemetry, pipelineName, pipelineInstanceName);
        _timeProvider = timeProvider;
        _maxAttempts = Math.Min(options.MaxAttempts ?? int.MaxValue, _pool.Backends.Count);
        _shouldHandle = options.ShouldHandle;
        _deferCredentials = options.DeferCredentials;
        _planner = new RequestPlanner(options, _pool, _telemetry, timeProvider);
        _bodies = ResponseBodyWatcher.Create(options, _pool, _telemetry, timeProvider);
        _queue = _pool.Queue;
        _gauges = new PriorityRoutingGaugeSource(_pool, timeProvider, _telemetry.Tags);
        _telemetry.Metrics.Register(_gauges);
        if (_pool.Models is { } models)
        {
            _telemetry.ModelsRouted(models);
        }
    }

    internal BackendPool Pool => _pool;

    /// <summary>Called by Polly when the pipeline is disposed (e.g. replaced by an options reload).</summary>
    public void Dispose()
    {
        _telemetry.Metrics.Unregister(_gauges);

        // Waiters try once more now rather than wait on a timer that no longer fires.
        _queue?.Dispose();
    }

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

        RequestPlan plan;
        try
        {
            plan = await _planner.PlanAsync(original, context.ContinueOnCapturedContext, context.CancellationToken).ConfigureAwait(context.ContinueOnCapturedContext);
        }
        catch (Exception e)
        {
            // The caller's own failure: no backend is involved, none is marked.
            return Outcome.FromException<HttpResponseMessage>(e);
        }

        if (plan.Answer is { } answer)
        {
            return Outcome.FromResult(answer);
        }

        var throttledInThisCall = false;
        RoutedBackend? failed = null;

        // With waiting on, a request released after a refill starts over from its plan as made.
        var fresh = _queue is null ? default : plan.Copy();
        var roundStart = 0;
        var waited = TimeSpan.Zero;
        try
        {
            for (var attempt = 0; ; attempt++)
            {
                if (context.CancellationToken.IsCancellationRequested)
                {
                    return Outcome.FromException<HttpResponseMessage>(new OperationCanceledException(context.CancellationToken));
                }

                if (attempt - roundStart >= _maxAttempts || !plan.TryAcquire(_pool, out var lease))
                {
                    var exhaustion = _pool.GetExhaustion(plan.Route, waited);
                    if (_queue is not null && exhaustion.Reservation is { } reservation)
                    {
                        var waitStarted = _timeProvider.GetTimestamp();
                        var (waitOutcome, held) = await _queue.WaitAsync(reservation, waited, SynchronousExecution.Is(context), context.ContinueOnCapturedContext, context.CancellationToken)
                            .ConfigureAwait(context.ContinueOnCapturedContext);
                        if (waitOutcome != WaitOutcome.NotQueued)
                        {
                            var waitedNow = _timeProvider.GetElapsedTime(waitStarted);
                            waited += waitedNow;
                            _telemetry.QueuedWaitEnded(reservation, waitOutcome, waitedNow);
                            if (waitOutcome == WaitOutcome.Canceled)
                            {
                                return Outcome.FromException<HttpResponseMessage>(new OperationCanceledException(context.CancellationToken));
                            }

                            // A new round over every allowed backend, MaxAttempts of them; the next attempt keeps
                            // this number (the loop's increment).
                            plan = fresh.Copy();
                            plan.Hold(held);
                            roundStart = attempt;
                            failed = null;
                            attempt--;
                            continue;
                        }
                    }

                    return await ExhaustedAsync(context, original, attempt, exhaustion, throttledInThisCall).ConfigureAwait(context.ContinueOnCapturedContext);
                }

                // Disposing the lease frees a probe slot on every path that records no verdict.
                using (lease)
                {
                    var backend = lease.Backend;
                    if (failed is not null)
                    {
                        _telemetry.FailingOver(failed, backend, attempt);
                    }

                    var started = _timeProvider.GetTimestamp();
                    var outcome = await SendAsync(callback, context, state, original, backend, plan.Model).ConfigureAwait(context.ContinueOnCapturedContext);
                    var duration = _timeProvider.GetElapsedTime(started);

                    if (outcome.Exception is OperationCanceledException && context.CancellationToken.IsCancellationRequested)
                    {
                        // The caller gave up: the backend did nothing wrong and must not be marked.
                        _telemetry.AttemptEnded(context, backend, outcome, attempt, duration, handled: false, PriorityRoutingTags.CanceledOutcome);
                        return outcome;
                    }

                    bool handled;
                    try
                    {
                        handled = await _shouldHandle(new PriorityRoutingPredicateArguments(context, outcome, backend.Name, backend.Priority))
                            .ConfigureAwait(context.ContinueOnCapturedContext);
                    }
                    catch (Exception e)
                    {
                        // Nobody else will see this answer: give its connection back before reporting the predicate's failure.
                        outcome.Result?.Dispose();
                        return Outcome.FromException<HttpResponseMessage>(e);
                    }

                    var deferHealth = false;
                    if (!handled && _bodies is not null && outcome.Result is { } response)
                    {
                        // The attempt is not over until the body's first byte: a backend that sends headers and then
                        // nothing fails over here, while nothing has reached the caller yet.
                        var body = await _bodies.PrepareAsync(response, original.Method, lease, started, context.ContinueOnCapturedContext, context.CancellationToken)
                            .ConfigureAwait(context.ContinueOnCapturedContext);
                        duration = _timeProvider.GetElapsedTime(started);
                        if (body.IsCanceled)
                        {
                            var canceled = Outcome.FromException<HttpResponseMessage>(new OperationCanceledException(context.CancellationToken));
                            _telemetry.AttemptEnded(context, backend, canceled, attempt, duration, handled: false, PriorityRoutingTags.CanceledOutcome);
                            return canceled;
                        }

                        if (body.Failure is { } failure)
                        {
                            outcome = failure;
                            handled = true;
                        }

                        deferHealth = body.DeferHealth;
                    }

                    if (!handled)
                    {
                        _telemetry.AttemptEnded(context, backend, outcome, attempt, duration, handled: false, PriorityRoutingTags.ReturnedOutcome);
                        if (await _pool.RecordReturnedAsync(lease, outcome, plan.Route, context.CancellationToken, deferHealth).ConfigureAwait(context.ContinueOnCapturedContext) is { } spent)
                        {
                            await _telemetry.BackendMarkedAsync(context, outcome, backend, spent, attempt, proactive: true).ConfigureAwait(context.ContinueOnCapturedContext);
                        }

                        if (!plan.Affinity.IsEmpty && outcome.Result is { } returned)
                        {
                            // Ids the answer creates are learned as it streams; a DELETE forgets them.
                            await _planner.Affinity!.ObserveAsync(plan.Affinity, returned, backend, context.CancellationToken).ConfigureAwait(context.ContinueOnCapturedContext);
                        }

                        return outcome;
                    }

                    try
                    {
                        var verdict = await _pool.RecordFailureAsync(lease, outcome, plan.Route, context.CancellationToken).ConfigureAwait(context.ContinueOnCapturedContext);
                        _telemetry.AttemptEnded(context, backend, outcome, attempt, duration, handled: true, PriorityRoutingTags.ToTagValue(verdict.Cause));
                        await _telemetry.BackendMarkedAsync(context, outcome, backend, verdict, attempt, proactive: false).ConfigureAwait(context.ContinueOnCapturedContext);
                        throttledInThisCall |= verdict.Cause == BackendUnavailableReason.Throttled;
                    }
                    finally
                    {
                        // The discarded answer must give its connection back to the pool.
                        outcome.Result?.Dispose();
                    }

                    failed = backend;
                    plan.OnFailover();
                }
            }
        }
        finally
        {
            // A room still held from a wait (the caller cancelled, or the loop ended before its next admission).
            plan.Route.Held?.Release();

            // An outer strategy (retry) executes us again: it must find the caller's request, not our last attempt's.
            context.SetRequestMessage(original);
        }
    }

    private async ValueTask<Outcome<HttpResponseMessage>> SendAsync<TState>(
        Func<ResilienceContext, TState, ValueTask<Outcome<HttpResponseMessage>>> callback,
        ResilienceContext context,
        TState state,
        HttpRequestMessage original,
        RoutedBackend backend,
        ModelRequest? model)
    {
        string? bearerToken = null;
        if (backend.BearerTokenProvider is { } tokenProvider)
        {
            try
            {
                bearerToken = await tokenProvider(context.CancellationToken).ConfigureAwait(context.ContinueOnCapturedContext);
            }
            catch (OperationCanceledException e) when (context.CancellationToken.IsCancellationRequested)
            {
                // The caller gave up while the token was fetched: the attempt loop reports it as the caller's.
                return Outcome.FromException<HttpResponseMessage>(e);
            }
            catch (Exception e)
            {
                // The backend's credential could not be obtained (an Entra ID outage, a revoked identity): the backend
                // cannot be reached, like a refused connection, so it is a transport failure that the default predicate
                // fails over from; the token source's own exception stays inside it.
                return Outcome.FromException<HttpResponseMessage>(new HttpRequestException(
                    HttpRequestError.Unknown,
                    $"The bearer token of backend '{backend.Name}' could not be obtained: {e.Message}",
                    e));
            }
        }

        context.SetRequestMessage(AttemptRequest.Create(original, backend, bearerToken, _deferCredentials, model?.ContentFor(backend)));
        return await callback(context, state).ConfigureAwait(context.ContinueOnCapturedContext);
    }

    private async ValueTask<Outcome<HttpResponseMessage>> ExhaustedAsync(
        ResilienceContext context,
        HttpRequestMessage original,
        int attemptCount,
        (TimeSpan RetryAfter, bool Throttled, BudgetReservation? Reservation) exhaustion,
        bool throttledInThisCall)
    {
        // 429 when throttling is why nothing is left: a pending throttle deadline, or a throttle seen by this call
        // (a backend that said "Retry-After: 0" is free again, yet the call was throttled).
        var (retryAfter, throttled, _) = exhaustion;
        var statusCode = throttled || throttledInThisCall ? HttpStatusCode.TooManyRequests : HttpStatusCode.ServiceUnavailable;
        var outcome = Outcome.FromResult(ExhaustedResponse.Create(statusCode, retryAfter, original));
        await _telemetry.ExhaustedAsync(context, outcome, statusCode, retryAfter, attemptCount).ConfigureAwait(context.ContinueOnCapturedContext);
        return outcome;
    }
}
