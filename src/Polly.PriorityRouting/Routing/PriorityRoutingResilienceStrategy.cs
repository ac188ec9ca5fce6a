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
        var nothingLeft = default(NothingLeft);
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
                    // Nothing left, on any model of the request: select again (at once, or after a wait), or answer now.
                    (plan, nothingLeft) = await _waits.WhenNothingLeftAsync(plan, nothingLeft, attempt, throttledInThisCall, original, context).ConfigureAwait(context.ContinueOnCapturedContext);
                    if (nothingLeft.Answer is { } end)
                    {
                        return end;
                    }

                    // The next attempt keeps this number (the loop's increment); after a wait it fails over from nothing.
                    turn = nothingLeft.Turn;
                    failed = nothingLeft.NewRound ? null : failed;
                    attempt--;
                    continue;
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
                    var sent = await SendAsync(callback, context, state, original, backend, plan.Model, plan.Route.Model).ConfigureAwait(context.ContinueOnCapturedContext);

                    // Classify.
                    var (ending, outcome, deferHealth) = await ClassifyAsync(context, sent, lease, original, started, attempt, plan).ConfigureAwait(context.ContinueOnCapturedContext);

                    // Record.
                    var duration = _timeProvider.GetElapsedTime(started);
                    switch (ending)
                    {
                        case AttemptEnding.Discarded:
                            return outcome;
                        case AttemptEnding.Canceled:
                            // The caller gave up: the backend did nothing wrong and must not be marked.
                            _telemetry.AttemptEnded(context, backend, outcome, attempt, duration, handled: false, PriorityRoutingTags.CanceledOutcome, plan.Route.IsBackground);
                            return outcome;
                        case AttemptEnding.Returned:
                            _pool.RecordAnswered(lease, healthyNow: outcome.Result is not null && !deferHealth);
                            _telemetry.AttemptEnded(context, backend, outcome, attempt, duration, handled: false, PriorityRoutingTags.ReturnedOutcome, plan.Route.IsBackground);
                            return outcome;
                        case AttemptEnding.LargerModel:
                            // The backend answered correctly that the prompt does not fit its model: it stays in
                            // rotation, and the request goes on to a larger model.
                            _pool.RecordAnswered(lease, healthyNow: true);
                            _telemetry.AttemptEnded(context, backend, outcome, attempt, duration, handled: true, PriorityRoutingTags.ContextLengthExceededOutcome, plan.Route.IsBackground);
                            (failed, failedModel) = (backend, plan.Route.Model);
                            plan.MoveToLargerModel();
                            continue;
                    }

                    // Failed.
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

    /// <summary>
    /// Says how an attempt ends: the caller's cancellation; else the predicate, then the observers of an answer going
    /// back (which may still fail it).
    /// </summary>
    /// <returns>How the attempt ends, the outcome to record (and return, unless it failed over), and whether the answer's body reports the backend's health when it ends.</returns>
    private async ValueTask<(AttemptEnding Ending, Outcome<HttpResponseMessage> Outcome, bool DeferHealth)> ClassifyAsync(
        ResilienceContext context,
        Outcome<HttpResponseMessage> outcome,
        BackendLease lease,
        HttpRequestMessage original,
        long started,
        int attempt,
        RequestPlan plan)
    {
        if (outcome.Exception is OperationCanceledException && context.CancellationToken.IsCancellationRequested)
        {
            return (AttemptEnding.Canceled, outcome, false);
        }

        var backend = lease.Backend;
        bool handled;
        try
        {
            handled = await _shouldHandle(new PriorityRoutingPredicateArguments(context, outcome, backend.Name, backend.Priority))
                .ConfigureAwait(context.ContinueOnCapturedContext);
        }
        catch (Exception e)
        {
            return (AttemptEnding.Discarded, Discarded(outcome, e), false);
        }

        if (handled || outcome.Result is not { } response)
        {
            return (handled ? AttemptEnding.Failed : AttemptEnding.Returned, outcome, false);
        }

        AnswerVerdict verdict;
        try
        {
            verdict = await _observers.ObserveAsync(new ReturnedAnswer(context, response, lease, original.Method, started, attempt, plan.Route, plan.Affinity, plan.Model, plan.CanMoveToLargerModel))
                .ConfigureAwait(context.ContinueOnCapturedContext);
        }
        catch (Exception e)
        {
            // A callback the observers call (OnBackendUnavailable on a spent budget) failed.
            return (AttemptEnding.Discarded, Discarded(outcome, e), false);
        }

        if (verdict.IsCanceled)
        {
            return (AttemptEnding.Canceled, CallerCanceled(context), false);
        }

        if (verdict.MovesToLargerModel)
        {
            return (AttemptEnding.LargerModel, outcome, false);
        }

        if (verdict.Failure is { } failure)
        {
            return (AttemptEnding.Failed, failure, false);
        }

        // The caller gets its own request back, never the attempt's with the backend's credential on it.
        response.RequestMessage = original;
        return (AttemptEnding.Returned, outcome, verdict.DeferHealth);
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

    /// <summary>The caller's cancellation as the answer: the loop's, and <see cref="RefillWaits"/>' when nothing is left.</summary>
    internal static Outcome<HttpResponseMessage> CallerCanceled(ResilienceContext context)
        => Outcome.FromException<HttpResponseMessage>(new OperationCanceledException(context.CancellationToken));

    /// <summary>
    /// Sends one attempt to <paramref name="backend"/>: its own request (the backend's address, headers and, for a mapped
    /// model, its deployment's body or path), with the backend's credentials applied here when no handler below does.
    /// </summary>
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

    /// <summary>How an attempt ends, as <see cref="ClassifyAsync"/> says: what the loop records, and what it does next.</summary>
    private enum AttemptEnding
    {
        /// <summary>The answer, or an unhandled exception, goes back to the caller.</summary>
        Returned,

        /// <summary>A handled failure: the backend is marked, and the next attempt goes elsewhere.</summary>
        Failed,

        /// <summary>The prompt does not fit the backend's model: the request goes on to a larger model.</summary>
        LargerModel,

        /// <summary>The caller gave up: its cancellation goes back.</summary>
        Canceled,

        /// <summary>The predicate, or a callback the observers call, failed: its failure goes back, nothing is recorded.</summary>
        Discarded,
    }
}
