using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Polly.Telemetry;

namespace Polly.PriorityRouting;

/// <summary>
/// The severities Polly reports the handler's events with: one Warning per fact an operator may act on, never Error
/// for what the handler absorbs or answers routinely.
/// </summary>
/// <remarks>
/// In the handler the strategy's own log (category <c>Polly.PriorityRouting</c>) always runs, and carries the Warning
/// of a backend leaving rotation and the level of the exhausted answer. Polly's copies of the same facts are
/// Information: the routing's <c>ExecutionAttempt</c>, <c>OnBackendUnavailable</c> and <c>OnBackendsExhausted</c>, the attempt timeout's
/// <c>OnTimeout</c> (Error by Polly's convention, for a timeout the routing fails over from), and the outer retry's
/// <c>ExecutionAttempt</c> and <c>OnRetry</c> when what it retried was the exhausted answer (Error on the last try by
/// Polly's convention, though the caller gets a clear "retry after").
/// </remarks>
internal static class HandlerTelemetrySeverity
{
    // A reference value: a bool would be boxed on every request that goes through the retry.
    private static readonly ResiliencePropertyKey<object?> RetriedExhaustedAnswer = new("Polly.PriorityRouting.RetriedExhaustedAnswer");

    private static readonly object Exhausted = new();

    /// <summary>
    /// The telemetry options registered in DI (listeners, enrichers, the user's severity provider, which still has the
    /// last word), with the handler's severities.
    /// </summary>
    public static TelemetryOptions Configure(PriorityRoutingHandlerOptions options, IServiceProvider services)
    {
        var telemetry = (services.GetService(typeof(IOptions<TelemetryOptions>)) as IOptions<TelemetryOptions>)?.Value is { } registered
            ? new TelemetryOptions(registered)
            : new TelemetryOptions { LoggerFactory = (ILoggerFactory?)services.GetService(typeof(ILoggerFactory)) ?? NullLoggerFactory.Instance };
        var user = telemetry.SeverityProvider;
        var routing = options.Routing.Name;
        var retry = options.Retry.Name;
        var attemptTimeout = options.AttemptTimeout.Name;
        telemetry.SeverityProvider = args =>
        {
            var severity = Lower(args, routing, retry, attemptTimeout) ? ResilienceEventSeverity.Information : args.Event.Severity;
            return user is null
                ? severity
                : user(new SeverityProviderArguments(args.Source, new ResilienceEvent(severity, args.Event.EventName), args.Context));
        };
        return telemetry;
    }

    /// <summary>Called by the outer retry's predicate with each outcome it judges, before Polly reports it.</summary>
    public static void NoteRetriedOutcome(ResilienceContext context, Outcome<HttpResponseMessage> outcome)
        => context.Properties.Set(
            RetriedExhaustedAnswer,
            outcome.Result is { } response && response.Headers.Contains(PriorityRoutingConstants.ExhaustedHeader) ? Exhausted : null);

    private static bool Lower(in SeverityProviderArguments args, string? routing, string? retry, string? attemptTimeout)
    {
        if (args.Event.Severity <= ResilienceEventSeverity.Information)
        {
            return false;
        }

        var strategy = args.Source.StrategyName;
        var name = args.Event.EventName;
        if (string.Equals(strategy, routing, StringComparison.Ordinal))
        {
            return name is PriorityRoutingConstants.ExecutionAttemptEvent or PriorityRoutingConstants.OnBackendUnavailableEvent
                or PriorityRoutingConstants.OnBackendsExhaustedEvent;
        }

        if (string.Equals(strategy, attemptTimeout, StringComparison.Ordinal))
        {
            return name == "OnTimeout";
        }

        return string.Equals(strategy, retry, StringComparison.Ordinal) &&
               name is "ExecutionAttempt" or "OnRetry" &&
               args.Context.Properties.TryGetValue(RetriedExhaustedAnswer, out var retried) && retried == Exhausted;
    }
}
