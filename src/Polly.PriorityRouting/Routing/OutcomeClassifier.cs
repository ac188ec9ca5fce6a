using System.Net;
using Polly.Timeout;

namespace Polly.PriorityRouting;

/// <summary>
/// Says what a handled outcome means for its backend: why it goes out of rotation, and for how long.
/// </summary>
internal static class OutcomeClassifier
{
    /// <summary>
    /// Classifies a handled outcome: a 429 or any answer with a throttle signal is a throttle (for the time it asked),
    /// 408 a timeout, 5xx a server error, an exception by its type; everything else "other". Without a signal the
    /// backend stays out for <paramref name="defaultCooldown"/>.
    /// </summary>
    public static (BackendUnavailableReason Reason, TimeSpan Cooldown) Classify(
        Outcome<HttpResponseMessage> outcome,
        DateTimeOffset now,
        TimeSpan defaultCooldown,
        TimeSpan maxCooldown)
    {
        if (outcome.Result is not { } response)
        {
            var reason = outcome.Exception switch
            {
                TimeoutRejectedException or OperationCanceledException => BackendUnavailableReason.Timeout,
                HttpRequestException => BackendUnavailableReason.TransportError,
                _ => BackendUnavailableReason.Other,
            };
            return (reason, defaultCooldown);
        }

        var hasSignal = ThrottleSignalParser.TryGetCooldown(response, now, maxCooldown, out var cooldown);
        var statusReason = response.StatusCode switch
        {
            HttpStatusCode.TooManyRequests => BackendUnavailableReason.Throttled,
            _ when hasSignal => BackendUnavailableReason.Throttled,
            HttpStatusCode.RequestTimeout => BackendUnavailableReason.Timeout,
            >= HttpStatusCode.InternalServerError => BackendUnavailableReason.ServerError,
            _ => BackendUnavailableReason.Other,
        };
        return (statusReason, hasSignal ? cooldown : defaultCooldown);
    }

    /// <summary>Returns whether a reason says the backend itself is failing (counts toward outlier ejection).</summary>
    public static bool IsBackendFailure(BackendUnavailableReason reason)
        => reason is BackendUnavailableReason.ServerError or BackendUnavailableReason.TransportError or BackendUnavailableReason.Timeout;
}
