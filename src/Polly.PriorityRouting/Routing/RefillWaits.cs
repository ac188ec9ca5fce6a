using System.Net;

namespace Polly.PriorityRouting;

/// <summary>
/// The loop's "select again, wait, or answer now" when nothing is left: once, a selection again at once when a deadline
/// passed meanwhile; with <see cref="PriorityRoutingStrategyOptions.MaxQueueWait"/> a caller promised room in a refill
/// waits for it in the <see cref="WaitQueue"/>, and a caller that found every backend left at its cap
/// (<see cref="PriorityBackend.MaxConcurrentRequests"/>) waits for the next slot given back; without the option, or with
/// neither, it is not queued and gets the exhausted answer at once.
/// </summary>
internal sealed class RefillWaits(BackendPool pool, RoutingTelemetry telemetry, TimeProvider timeProvider)
{
    private readonly WaitQueue? _queue = pool.Queue;

    /// <summary>Decides what the loop does when no backend is left on any model of the request.</summary>
    /// <param name="plan">The request's plan.</param>
    /// <param name="before">The call's decision before this one (the default before the first): what it has spent.</param>
    /// <param name="attempts">How many attempts the call made: the exhausted answer reports them.</param>
    /// <param name="throttledInThisCall">Whether a backend throttled this call: the exhausted answer is then a 429.</param>
    /// <param name="original">The caller's request, which the exhausted answer carries.</param>
    /// <param name="context">The execution's context (its cancellation).</param>
    /// <returns>The plan as it is for the next selection, and what the loop does next.</returns>
    public async ValueTask<(RequestPlan Plan, NothingLeft Next)> WhenNothingLeftAsync(
        RequestPlan plan,
        NothingLeft before,
        int attempts,
        bool throttledInThisCall,
        HttpRequestMessage original,
        ResilienceContext context)
    {
        if (context.CancellationToken.IsCancellationRequested)
        {
            // The caller gave up (also while a reservation travelled): its cancellation is the answer, and it comes back
            // for none of the claims its refusals hold.
            plan.GiveBackClaims(pool);
            return (plan, NothingLeft.Answered(PriorityRoutingResilienceStrategy.CallerCanceled(context)));
        }

        var exhaustion = plan.GetExhaustion(pool, before.Waited);
        if (exhaustion.RetryAfter == TimeSpan.Zero && !before.Reselected)
        {
            // A deadline passed between the selection and this answer: a backend is open now, and "retry after 0" would
            // send the caller back for what this call can take itself. Once, so a backend open yet not selectable
            // (MaxAttempts spent) still gets its answer.
            plan.ReturnToOpenModel(pool);
            return (plan, before.Reselect());
        }

        // Whether it waits or is sent back, the caller comes back for its soonest claim only.
        plan.KeepSoonestClaim(pool);
        var wait = await WaitAsync(exhaustion.Reservation, plan.Route, before.Waited, context).ConfigureAwait(context.ContinueOnCapturedContext);
        switch (wait.Outcome)
        {
            case WaitOutcome.Canceled:
                // The claim it waited for holds room from everyone else until its grace ends: given back.
                plan.GiveBackClaims(pool);
                return (plan, NothingLeft.Answered(PriorityRoutingResilienceStrategy.CallerCanceled(context)));
            case WaitOutcome.Released:
                // A new round over every allowed backend, MaxAttempts of them.
                plan.StartOver();
                plan.Hold(wait.Held);
                return (plan, before.AfterWait(wait.Waited, wait.Turn));
            default:
                var answer = await ExhaustedAsync(context, original, attempts, exhaustion, throttledInThisCall, plan.Route.IsBackground).ConfigureAwait(context.ContinueOnCapturedContext);
                return (plan, NothingLeft.Answered(answer));
        }
    }

    /// <summary>Waits for the promised refill, or a slot, when there is one to wait for within what is left of the bound.</summary>
    /// <param name="reservation">The room the exhausted answer promised, or <see langword="null"/>.</param>
    /// <param name="route">The request's route: the backends whose slots it may wait for.</param>
    /// <param name="waited">How long this execution has already waited.</param>
    /// <param name="context">The execution's context (its cancellation).</param>
    /// <returns>
    /// How the wait ended, how long it took, and, when released, the room held for the caller's next admission or a
    /// foreground caller's turn at the slots it waited for (see <see cref="SlotTurn"/>): the caller ends either once
    /// that admission is decided.
    /// </returns>
    private async ValueTask<(WaitOutcome Outcome, TimeSpan Waited, BudgetHold? Held, SlotTurn? Turn)> WaitAsync(
        BudgetReservation? reservation,
        RequestRoute route,
        TimeSpan waited,
        ResilienceContext context)
    {
        if (_queue is null)
        {
            return (WaitOutcome.NotQueued, TimeSpan.Zero, null, null);
        }

        if (reservation is not { } promised)
        {
            return pool.HasConcurrencyCaps ? await WaitForSlotAsync(route, waited, context).ConfigureAwait(context.ContinueOnCapturedContext) : (WaitOutcome.NotQueued, TimeSpan.Zero, null, null);
        }

        var started = timeProvider.GetTimestamp();
        var (outcome, held) = await _queue.WaitAsync(promised, waited, SynchronousExecution.Is(context), context.ContinueOnCapturedContext, context.CancellationToken)
            .ConfigureAwait(context.ContinueOnCapturedContext);
        if (outcome == WaitOutcome.NotQueued)
        {
            return (outcome, TimeSpan.Zero, null, null);
        }

        var waitedNow = timeProvider.GetElapsedTime(started);
        try
        {
            telemetry.QueuedWaitEnded(promised, outcome, waitedNow);
        }
        catch
        {
            // A failing logger or metrics listener fails the request, but the room must not stay held from everyone.
            held?.Release();
            throw;
        }

        return (outcome, waitedNow, held, null);
    }

    private async ValueTask<(WaitOutcome Outcome, TimeSpan Waited, BudgetHold? Held, SlotTurn? Turn)> WaitForSlotAsync(RequestRoute route, TimeSpan waited, ResilienceContext context)
    {
        var started = timeProvider.GetTimestamp();
        var (freed, turn) = await pool.SlotWaits.WaitAsync(route, _queue!.MaxWait - waited, SynchronousExecution.Is(context), context.ContinueOnCapturedContext, context.CancellationToken)
            .ConfigureAwait(context.ContinueOnCapturedContext);
        var waitedNow = timeProvider.GetElapsedTime(started);
        var outcome = context.CancellationToken.IsCancellationRequested ? WaitOutcome.Canceled
            : freed ? WaitOutcome.Released
            : WaitOutcome.NotQueued;
        if (outcome != WaitOutcome.Released)
        {
            turn?.Dispose();
            turn = null;
        }

        return (outcome, waitedNow, null, turn);
    }

    /// <summary>The exhausted answer, 429 or 503 with the soonest recovery time, reported before it goes back.</summary>
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
        await telemetry.ExhaustedAsync(context, outcome, statusCode, retryAfter, attemptCount, background).ConfigureAwait(context.ContinueOnCapturedContext);
        return outcome;
    }
}
