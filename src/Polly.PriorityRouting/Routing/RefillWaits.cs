namespace Polly.PriorityRouting;

/// <summary>
/// The loop's "wait, or answer now" when nothing is left: with <see cref="PriorityRoutingStrategyOptions.MaxQueueWait"/>
/// a caller promised room in a refill waits for it in the <see cref="WaitQueue"/>; without, or without a promise, it is
/// not queued and gets the exhausted answer at once.
/// </summary>
internal sealed class RefillWaits(WaitQueue? queue, RoutingTelemetry telemetry, TimeProvider timeProvider)
{
    /// <summary>Waits for the promised refill when there is one and it comes within what is left of the bound.</summary>
    /// <param name="reservation">The room the exhausted answer promised, or <see langword="null"/>.</param>
    /// <param name="waited">How long this execution has already waited.</param>
    /// <param name="context">The execution's context (its cancellation).</param>
    /// <returns>How the wait ended, how long it took, and the room held for the caller's next admission when released.</returns>
    public async ValueTask<(WaitOutcome Outcome, TimeSpan Waited, BudgetHold? Held)> WaitAsync(BudgetReservation? reservation, TimeSpan waited, ResilienceContext context)
    {
        if (queue is null || reservation is not { } promised)
        {
            return (WaitOutcome.NotQueued, TimeSpan.Zero, null);
        }

        var started = timeProvider.GetTimestamp();
        var (outcome, held) = await queue.WaitAsync(promised, waited, SynchronousExecution.Is(context), context.ContinueOnCapturedContext, context.CancellationToken)
            .ConfigureAwait(context.ContinueOnCapturedContext);
        if (outcome == WaitOutcome.NotQueued)
        {
            return (outcome, TimeSpan.Zero, null);
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

        return (outcome, waitedNow, held);
    }
}
