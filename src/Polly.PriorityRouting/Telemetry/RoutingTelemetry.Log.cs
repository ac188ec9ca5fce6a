using Microsoft.Extensions.Logging;

namespace Polly.PriorityRouting;

internal sealed partial class RoutingTelemetry
{
    /// <summary>
    /// The strategy's logs. Event ids and levels are documented in docs/observability.md; messages name backends,
    /// never header values or URLs.
    /// </summary>
    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning,
            "Backend '{BackendName}' (priority {Priority}) is unavailable for {CooldownMs} ms: {Reason}.")]
        public static partial void BackendUnavailable(ILogger logger, string backendName, int priority, BackendUnavailableReason reason, long cooldownMs);

        [LoggerMessage(2, LogLevel.Debug,
            "Backend '{BackendName}' (priority {Priority}) failed again while unavailable; kept out for {CooldownMs} ms more: {Reason}.")]
        public static partial void BackendUnavailabilityRenewed(ILogger logger, string backendName, int priority, BackendUnavailableReason reason, long cooldownMs);

        [LoggerMessage(3, LogLevel.Debug,
            "Failing over from backend '{FromBackend}' (priority {FromPriority}) to '{ToBackend}' (priority {ToPriority}), attempt {AttemptNumber}.")]
        public static partial void FailingOver(ILogger logger, string fromBackend, int fromPriority, string toBackend, int toPriority, int attemptNumber);

        /// <summary>Information for a 429 (routine for a saturated deployment), Warning for a 503 (backends failing).</summary>
        [LoggerMessage(EventId = 4, Message = "No backend left to try after {AttemptCount} attempts; answering {StatusCode} with a retry after {RetryAfterMs} ms.")]
        public static partial void BackendsExhausted(ILogger logger, LogLevel level, int statusCode, long retryAfterMs, int attemptCount);

        [LoggerMessage(5, LogLevel.Warning,
            "The backend state store failed to record backend '{BackendName}'; routing goes on with what the store still serves.")]
        public static partial void StoreWriteFailed(ILogger logger, string backendName, Exception exception);

        [LoggerMessage(6, LogLevel.Warning,
            "Backend '{BackendName}' (priority {Priority}) is ejected for {EjectionMs} ms after repeated failures (ejection {Ejections} in a row, last: {Reason}); one probe request goes first when it ends.")]
        public static partial void BackendEjected(ILogger logger, string backendName, int priority, long ejectionMs, int ejections, BackendUnavailableReason reason);

        [LoggerMessage(7, LogLevel.Information,
            "Backend '{BackendName}' (priority {Priority}) reported a spent rate-limit budget; out of rotation for {CooldownMs} ms until it resets.")]
        public static partial void BudgetExhausted(ILogger logger, string backendName, int priority, long cooldownMs);
    }
}
