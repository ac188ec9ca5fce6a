namespace Polly.PriorityRouting;

/// <summary>
/// The loop's "wait, or answer now" when nothing is left: with <see cref="PriorityRoutingStrategyOptions.MaxQueueWait"/>
/// a caller promised room in a refill waits for it in the <see cref="WaitQueue"/>, and a caller that found every backend
/// left at its cap (<see cref="PriorityBackend.MaxConcurrentRequests"/>) waits for the next slot given back; without the
/// option, or with neither, it is not queued and gets the exhausted answer at once.
/// </summary>
internal sealed class RefillWaits(BackendPool pool, RoutingTelemetry telemetry, TimeProvider timeProvider)
{
    private readonly WaitQueue? _queue = pool.Queue;

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
    public async ValueTask<(WaitOutcome Outcome, TimeSpan Waited, BudgetHold? Held, SlotTurn? Turn)> WaitAsync(
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
        var (freed, turn) = await pool.SlotWaits.WaitAsync(route, _queue!.MaxWait - waited, context.ContinueOnCapturedContext, context.CancellationToken)
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
}
