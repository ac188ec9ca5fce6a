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
    /// <returns>How the wait ended, and how long it took.</returns>
    public async ValueTask<(WaitOutcome Outcome, TimeSpan Waited)> WaitAsync(BudgetReservation? reservation, TimeSpan waited, ResilienceContext context)
    {
        if (queue is null || reservation is not { } promised)
        {
            return (WaitOutcome.NotQueued, TimeSpan.Zero);
        }

        var started = timeProvider.GetTimestamp();
        var outcome = await queue.WaitAsync(promised, waited, context.ContinueOnCapturedContext, context.CancellationToken)
            .ConfigureAwait(context.ContinueOnCapturedContext);
        if (outcome == WaitOutcome.NotQueued)
        {
            return (outcome, TimeSpan.Zero);
        }

        var waitedNow = timeProvider.GetElapsedTime(started);
        telemetry.QueuedWaitEnded(promised, outcome, waitedNow);
        return (outcome, waitedNow);
    }
}
