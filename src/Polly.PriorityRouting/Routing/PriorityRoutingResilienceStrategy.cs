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
/// This class is the attempt loop only, shaped like Polly's retry: plan once (<see cref="RequestPlanner"/>), then per
/// attempt select, send, classify, record, and the next attempt or the exhausted answer. Where the request may go is
/// the plan's; the backends' state is <see cref="BackendPool"/>'s; what an answer going back teaches is the
/// observers' (<see cref="AnswerObservers"/>); what is reported to Polly, logs, metrics and callbacks is
/// <see cref="RoutingTelemetry"/>'s.
/// </remarks>
internal sealed class PriorityRoutingResilienceStrategy : ResilienceStrategy<HttpResponseMessage>, IDisposable
{
    private readonly BackendPool _pool;
    private readonly RoutingTelemetry _telemetry;
    private readonly PriorityRoutingGaugeSource _gauges;
    private readonly TimeProvider _timeProvider;
    private readonly Func<PriorityRoutingPredicateArguments, ValueTask<bool>> _shouldHandle;
    private readonly bool _deferCredentials;
    private readonly RequestPlanner _planner;
    private readonly AnswerObservers _observers;
    private readonly RefillWaits _waits;
    private readonly Action<RoutedBackend, bool, bool> _reservationRefused;
    private readonly IDisposable? _attachment;

    public PriorityRoutingResilienceStrategy(
        PriorityRoutingStrategyOptions options,
        TimeProvider timeProvider,
        ResilienceStrategyTelemetry telemetry,
        string? pipelineName = null,
        string? pipelineInstanceName = null)
    {
        _pool = new BackendPool(
            options, SharedBackendState.For(options.StateStore ?? InMemoryBackendStateStore.Shared), timeProvider);
        _telemetry = new RoutingTelemetry(options, telemetry, pipelineName, pipelineInstanceName);
        _timeProvider = timeProvider;
        _shouldHandle = options.ShouldHandle;
        _deferCredentials = options.DeferCredentials;
        _planner = new RequestPlanner(options, _pool, _telemetry, timeProvider);
        _observers = new AnswerObservers(options, _pool, _telemetry, timeProvider, _planner.Affinity);
        _waits = new RefillWaits(_pool, _telemetry, timeProvider);
        _reservationRefused = _telemetry.ReservationRefused;
        _gauges = new PriorityRoutingGaugeSource(_pool, timeProvider, _telemetry.Tags);
        _telemetry.Metrics.Register(_gauges);
        if (_pool.Models is { } models)
        {
            _telemetry.ModelsRouted(models);
        }

        _attachment = options.AttachPool?.Invoke(_pool);
    }

    internal BackendPool Pool => _pool;

    /// <summary>Called by Polly when the pipeline is disposed (e.g. replaced by an options reload).</summary>
    public void Dispose()
    {
        _telemetry.Metrics.Unregister(_gauges);
        _attachment?.Dispose();

        // Waiters try once more now rather than wait on a timer that no longer fires.
        _pool.Queue?.Dispose();
    }

    protected override ValueTask<Outcome<HttpResponseMessage>> ExecuteCore<TState>(
        Func<ResilienceContext, TState, ValueTask<Outcome<HttpResponseMessage>>> callback,
        ResilienceContext context,
        TState state)
    {
        var original = context.GetRequestMessage();
        if (original is null)
        {
            return new(Outcome.FromException<HttpResponseMessage>(new InvalidOperationException(
                "The priority routing strategy needs the request message in the resilience context. Use it in a pipeline " +
                "added with AddResilienceHandler, or call ResilienceContext.SetRequestMessage before executing.")));
        }

        ValueTask<RequestPlan> planning;
        try
        {
            planning = _planner.PlanAsync(original, context.ContinueOnCapturedContext, context.CancellationToken);
        }
        catch (Exception e)
        {
            return new(CallersOwnFailure(e));
        }

        // Most requests are planned synchronously: the loop then holds the plan without awaiting it.
        return planning.IsCompletedSuccessfully
            ? RouteAsync(callback, context, state, original, planning.Result)
            : PlanThenRouteAsync(callback, context, state, original, planning);
    }

    private async ValueTask<Outcome<HttpResponseMessage>> PlanThenRouteAsync<TState>(
        Func<ResilienceContext, TState, ValueTask<Outcome<HttpResponseMessage>>> callback,
        ResilienceContext context,
        TState state,
        HttpRequestMessage original,
        ValueTask<RequestPlan> planning)
    {
        RequestPlan plan;
        try
        {
            plan = await planning.ConfigureAwait(context.ContinueOnCapturedContext);
        }
        catch (Exception e)
        {
            return CallersOwnFailure(e);
        }

        return await RouteAsync(callback, context, state, original, plan).ConfigureAwait(context.ContinueOnCapturedContext);
    }

    /// <summary>The attempt loop over what the plan allows.</summary>
    private async ValueTask<Outcome<HttpResponseMessage>> RouteAsync<TState>(
        Func<ResilienceContext, TState, ValueTask<Outcome<HttpResponseMessage>>> callback,
        ResilienceContext context,
        TState state,
        HttpRequestMessage original,
        RequestPlan plan)
    {
        if (plan.Answer is { } answer)
        {
            return Outcome.FromResult(answer);
        }

        var throttledInThisCall = false;
        RoutedBackend? failed = null;
        ModelRoute? failedModel = null;
        var waited = TimeSpan.Zero;
        var reselected = false;
        SlotTurn? turn = null;
        try
        {
            for (var attempt = 0; ; attempt++)
            {
                // Select (and admit: with shared reservations, one round trip to the store per backend asked).
                (plan, var acquired) = await RequestPlan.AcquireAsync(plan, _pool, _reservationRefused, context).ConfigureAwait(context.ContinueOnCapturedContext);

                // A foreground caller released from a wait for a slot had its turn until this admission was decided.
                turn?.Dispose();
                turn = null;
                if (acquired is not { } lease)
                {
                    if (context.CancellationToken.IsCancellationRequested)
                    {
                        // The caller gave up (also while a reservation travelled): its cancellation is the answer, and it
                        // comes back for none of the claims its refusals hold.
                        plan.GiveBackClaims(_pool);
                        return CallerCanceled(context);
                    }

                    // Nothing left, on any model of the request: wait for a promised refill and start a new round, or answer now.
                    var exhaustion = plan.GetExhaustion(_pool, waited);
                    if (exhaustion.RetryAfter == TimeSpan.Zero && !reselected)
                    {
                        // A deadline passed between the selection and this answer: a backend is open now, and "retry
                        // after 0" would send the caller back for what this call can take itself. Once, so a backend
                        // open yet not selectable (MaxAttempts spent) still gets its answer.
                        reselected = true;
                        plan.ReturnToOpenModel(_pool);
                        attempt--;
                        continue;
                    }

                    // Whether it waits or is sent back, the caller comes back for its soonest claim only.
                    plan.KeepSoonestClaim(_pool);
                    var wait = await _waits.WaitAsync(exhaustion.Reservation, plan.Route, waited, context).ConfigureAwait(context.ContinueOnCapturedContext);
                    waited += wait.Waited;
                    switch (wait.Outcome)
                    {
                        case WaitOutcome.Canceled:
                            // The claim it waited for holds room from everyone else until its grace ends: given back.
                            plan.GiveBackClaims(_pool);
                            return CallerCanceled(context);
                        case WaitOutcome.Released:
                            // A new round over every allowed backend, MaxAttempts of them; the next attempt keeps this
                            // number (the loop's increment).
                            plan.StartOver();
                            plan.Hold(wait.Held);
                            turn = wait.Turn;
                            failed = null;
                            attempt--;
                            continue;
                        default:
                            return await ExhaustedAsync(context, original, attempt, exhaustion, throttledInThisCall, plan.Route.IsBackground).ConfigureAwait(context.ContinueOnCapturedContext);
                    }
                }

                // Disposing the lease frees a probe slot on every path that records no verdict.
                using (lease)
                {
                    var backend = lease.Backend;
                    if (failed is not null)
                    {
                        _telemetry.FailingOver(failed, backend, attempt);
                        if (failedModel != plan.Route.Model)
                        {
                            _telemetry.FallingBackToModel(failedModel!, plan.Route.Model!, attempt);
                        }
                    }

                    // Send.
                    var started = _timeProvider.GetTimestamp();
                    var outcome = await SendAsync(callback, context, state, original, backend, plan.Model, plan.Route.Model).ConfigureAwait(context.ContinueOnCapturedContext);
                    if (outcome.Exception is OperationCanceledException && context.CancellationToken.IsCancellationRequested)
                    {
                        // The caller gave up: the backend did nothing wrong and must not be marked.
                        _telemetry.AttemptEnded(context, backend, outcome, attempt, _timeProvider.GetElapsedTime(started), handled: false, PriorityRoutingTags.CanceledOutcome, plan.Route.IsBackground);
                        return outcome;
                    }

                    // Classify: the predicate, then the observers of an answer going back (which may still fail it).
                    bool handled;
                    try
                    {
                        handled = await _shouldHandle(new PriorityRoutingPredicateArguments(context, outcome, backend.Name, backend.Priority))
                            .ConfigureAwait(context.ContinueOnCapturedContext);
                    }
                    catch (Exception e)
                    {
                        return Discarded(outcome, e);
                    }

                    var verdict = AnswerVerdict.Accepted;
                    if (!handled && outcome.Result is { } response)
                    {
                        try
                        {
                            verdict = await _observers.ObserveAsync(new ReturnedAnswer(context, response, lease, original.Method, started, attempt, plan.Route, plan.Affinity, plan.Model, plan.CanMoveToLargerModel))
                                .ConfigureAwait(context.ContinueOnCapturedContext);
                        }
                        catch (Exception e)
                        {
                            // A callback the observers call (OnBackendUnavailable on a spent budget) failed.
                            return Discarded(outcome, e);
                        }

                        if (verdict.IsCanceled)
                        {
                            var canceled = CallerCanceled(context);
                            _telemetry.AttemptEnded(context, backend, canceled, attempt, _timeProvider.GetElapsedTime(started), handled: false, PriorityRoutingTags.CanceledOutcome, plan.Route.IsBackground);
                            return canceled;
                        }

                        if (verdict.MovesToLargerModel)
                        {
                            // The backend answered correctly that the prompt does not fit its model: it stays in
                            // rotation, and the request goes on to a larger model.
                            _pool.RecordAnswered(lease, healthyNow: true);
                            _telemetry.AttemptEnded(context, backend, outcome, attempt, _timeProvider.GetElapsedTime(started), handled: true, PriorityRoutingTags.ContextLengthExceededOutcome, plan.Route.IsBackground);
                            (failed, failedModel) = (backend, plan.Route.Model);
                            plan.MoveToLargerModel();
                            continue;
                        }

                        if (verdict.Failure is { } failure)
                        {
                            outcome = failure;
                            handled = true;
                        }
                        else
                        {
                            // The caller gets its own request back, never the attempt's with the backend's credential on it.
                            response.RequestMessage = original;
                        }
                    }

                    // Record.
                    var duration = _timeProvider.GetElapsedTime(started);
                    if (!handled)
                    {
                        _pool.RecordAnswered(lease, healthyNow: outcome.Result is not null && !verdict.DeferHealth);
                        _telemetry.AttemptEnded(context, backend, outcome, attempt, duration, handled: false, PriorityRoutingTags.ReturnedOutcome, plan.Route.IsBackground);
                        return outcome;
                    }

                    try
                    {
                        var marked = await _pool.RecordFailureAsync(lease, outcome, plan.Route, context.CancellationToken).ConfigureAwait(context.ContinueOnCapturedContext);
                        _telemetry.AttemptEnded(context, backend, outcome, attempt, duration, handled: true, PriorityRoutingTags.ToTagValue(marked.Cause), plan.Route.IsBackground);
                        await _telemetry.BackendMarkedAsync(context, outcome, backend, marked, attempt, proactive: false).ConfigureAwait(context.ContinueOnCapturedContext);
                        throttledInThisCall |= marked.Cause == BackendUnavailableReason.Throttled;
                    }
                    finally
                    {
                        // The discarded answer must give its connection back to the pool.
                        outcome.Result?.Dispose();
                    }

                    // Next attempt.
                    (failed, failedModel) = (backend, plan.Route.Model);
                }
            }
        }
        finally
        {
            // A room still held from a wait (the caller cancelled, or the loop ended before its next admission).
            plan.Route.Held?.Release();
            turn?.Dispose();

            // An outer strategy (retry) executes us again: it must find the caller's request, not our last attempt's.
            context.SetRequestMessage(original);
        }
    }

    /// <summary>Planning failed on the caller's own request (its body, its partition function): no backend is involved, none is marked.</summary>
    private static Outcome<HttpResponseMessage> CallersOwnFailure(Exception e) => Outcome.FromException<HttpResponseMessage>(e);

    /// <summary>
    /// The predicate, or a callback the observers call, failed on an answer: nobody else will see the answer, so its
    /// connection goes back before the failure is reported.
    /// </summary>
    private static Outcome<HttpResponseMessage> Discarded(Outcome<HttpResponseMessage> outcome, Exception failure)
    {
        outcome.Result?.Dispose();
        return Outcome.FromException<HttpResponseMessage>(failure);
    }

    private static Outcome<HttpResponseMessage> CallerCanceled(ResilienceContext context)
        => Outcome.FromException<HttpResponseMessage>(new OperationCanceledException(context.CancellationToken));

    private async ValueTask<Outcome<HttpResponseMessage>> SendAsync<TState>(
        Func<ResilienceContext, TState, ValueTask<Outcome<HttpResponseMessage>>> callback,
        ResilienceContext context,
        TState state,
        HttpRequestMessage original,
        RoutedBackend backend,
        ModelRequest? model,
        ModelRoute? serving)
    {
        var request = AttemptRequest.Create(original, backend, _deferCredentials, model?.ContentFor(backend, serving), model?.PathDeploymentFor(backend, serving));
        if (!_deferCredentials && backend.Credentials is { } credentials)
        {
            // A pipeline composed in code has no handler below it to apply them: here, under the caller's cancellation only.
            try
            {
                await credentials.ApplyToAsync(request, context.CancellationToken).ConfigureAwait(context.ContinueOnCapturedContext);
            }
            catch (Exception e)
            {
                // The caller's cancellation is reported as the caller's by the loop; a token that could not be obtained
                // is a transport failure of the backend.
                return Outcome.FromException<HttpResponseMessage>(e);
            }
        }

        context.SetRequestMessage(request);
        return await callback(context, state).ConfigureAwait(context.ContinueOnCapturedContext);
    }

    private async ValueTask<Outcome<HttpResponseMessage>> ExhaustedAsync(
        ResilienceContext context,
        HttpRequestMessage original,
        int attemptCount,
        (TimeSpan RetryAfter, bool Throttled, BudgetReservation? Reservation) exhaustion,
        bool throttledInThisCall,
        bool background)
    {
        // 429 when throttling is why nothing is left: a pending throttle deadline, or a throttle seen by this call
        // (a backend that said "Retry-After: 0" is free again, yet the call was throttled).
        var (retryAfter, throttled, _) = exhaustion;
        var statusCode = throttled || throttledInThisCall ? HttpStatusCode.TooManyRequests : HttpStatusCode.ServiceUnavailable;
        var outcome = Outcome.FromResult(ExhaustedResponse.Create(statusCode, retryAfter, original));
        await _telemetry.ExhaustedAsync(context, outcome, statusCode, retryAfter, attemptCount, background).ConfigureAwait(context.ContinueOnCapturedContext);
        return outcome;
    }
}
