using Microsoft.Extensions.Logging;

namespace Polly.PriorityRouting;

internal sealed partial class RoutingTelemetry
{
    /// <summary>
    /// A request waited in the strategy for the room promised it in a refill (<see cref="PriorityRoutingStrategyOptions.MaxQueueWait"/>):
    /// routine under overload, so Debug; the histogram counts the waits and their time.
    /// </summary>
    public void QueuedWaitEnded(BudgetReservation reservation, WaitOutcome outcome, TimeSpan waited)
    {
        var outcomeTag = outcome == WaitOutcome.Canceled ? PriorityRoutingTags.CanceledOutcome : PriorityRoutingTags.ReleasedOutcome;
        if (_metrics.QueuedWaits.Enabled)
        {
            var tags = Tags;
            tags.Add(PriorityRoutingTags.BackendName, reservation.BackendName);
            tags.Add(PriorityRoutingTags.Outcome, outcomeTag);
            AddClass(ref tags, reservation.IsBackground);
            _metrics.QueuedWaits.Record(waited.TotalSeconds, tags);
        }

        Log.QueuedWaitEnded(_logger, (long)waited.TotalMilliseconds, reservation.BackendName, outcomeTag);
    }

    private static partial class Log
    {
        [LoggerMessage(12, LogLevel.Debug,
            "A request waited {WaitedMs} ms for the promised refill of backend '{BackendName}': {Outcome}.")]
        public static partial void QueuedWaitEnded(ILogger logger, long waitedMs, string backendName, string outcome);
    }
}
