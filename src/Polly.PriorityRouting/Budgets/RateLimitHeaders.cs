using System.Globalization;
using System.Net.Http.Headers;

namespace Polly.PriorityRouting;

/// <summary>
/// Reads the rate-limit budget an answer reports (<c>x-ratelimit-remaining-*</c>, <c>-limit-*</c>, <c>-reset-*</c>, for
/// tokens and requests) once, for both the process's budget view and a shared reservation's correction. Garbage values
/// read as absent.
/// </summary>
internal static class RateLimitHeaders
{
    public const string LimitTokensHeader = "x-ratelimit-limit-tokens";

    public const string LimitRequestsHeader = "x-ratelimit-limit-requests";

    /// <summary>Reads what an answer reports; <see langword="false"/> when it reports no remaining count.</summary>
    /// <param name="headers">The answer's headers.</param>
    /// <param name="maxCooldown">The longest reset believed.</param>
    /// <param name="sentAt">When the attempt was sent: the backend decided the count then.</param>
    /// <param name="receivedAt">When the answer arrived.</param>
    /// <param name="report">The budgets reported.</param>
    public static bool TryRead(
        HttpResponseHeaders headers, TimeSpan maxCooldown, DateTimeOffset sentAt, DateTimeOffset receivedAt, out BackendReservationReport report)
    {
        var hasTokens = TryGetNumber(headers, PriorityRoutingConstants.RateLimitRemainingTokensHeader, out var remainingTokens);
        var hasRequests = TryGetNumber(headers, PriorityRoutingConstants.RateLimitRemainingRequestsHeader, out var remainingRequests);
        if (!hasTokens && !hasRequests)
        {
            report = default;
            return false;
        }

        report = new BackendReservationReport(
            hasTokens ? remainingTokens : null,
            TryGetNumber(headers, LimitTokensHeader, out var limitTokens) ? limitTokens : null,
            GetDuration(headers, PriorityRoutingConstants.RateLimitResetTokensHeader, maxCooldown),
            hasRequests ? remainingRequests : null,
            TryGetNumber(headers, LimitRequestsHeader, out var limitRequests) ? limitRequests : null,
            GetDuration(headers, PriorityRoutingConstants.RateLimitResetRequestsHeader, maxCooldown),
            sentAt,
            receivedAt);
        return true;
    }

    private static TimeSpan GetDuration(HttpResponseHeaders headers, string name, TimeSpan maxCooldown)
    {
        if (!ThrottleSignalParser.TryGetDuration(headers, name, out var seconds))
        {
            // A remaining budget without a reset moment holds for no time: it can neither hold a backend back nor be spent.
            return TimeSpan.Zero;
        }

        return TimeSpan.FromSeconds(Math.Min(seconds, maxCooldown.TotalSeconds));
    }

    private static bool TryGetNumber(HttpResponseHeaders headers, string name, out long value)
    {
        value = 0;
        return ThrottleSignalParser.TryGetFirstValue(headers, name, out var raw) &&
               long.TryParse(raw.AsSpan().Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out value) &&
               value >= 0;
    }
}
