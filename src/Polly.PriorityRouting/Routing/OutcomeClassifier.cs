using System.Net;
using Polly.Timeout;

namespace Polly.PriorityRouting;

/// <summary>
/// Says what a handled outcome means for its backend: why it goes out of rotation, and for how long.
/// </summary>
/// <remarks>
/// A server error that says when to come back (<c>Retry-After</c>, <c>retry-after-ms</c>, <c>x-ms-retry-after-ms</c>)
/// is a throttle: the service is up enough to answer and is asking for time for what it was asked — Azure OpenAI's 503
/// for an overloaded model is per deployment — so it holds out the request's partition (its deployment) for the time
/// asked, and does not count toward ejection. Being wrong costs one failed-over attempt per other deployment when the
/// whole backend is down; the other way round, every other model's traffic would leave the backend. A backend that is
/// down shows it without such a header (refused connections, timeouts, bare 5xx): a server error of the whole backend.
/// </remarks>
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
