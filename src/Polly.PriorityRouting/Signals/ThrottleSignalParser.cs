using System.Globalization;
using System.Net;
using System.Net.Http.Headers;

namespace Polly.PriorityRouting;

/// <summary>
/// Turns a backend's throttle headers into a cooldown. Never throws, whatever the headers hold.
/// </summary>
/// <remarks>
/// Precedence, most precise first: <c>retry-after-ms</c>, <c>x-ms-retry-after-ms</c>, <c>Retry-After</c> (delta
/// seconds, fractional seconds or HTTP-date), then — for 429 answers only, since these headers ride on every OpenAI
/// answer and say nothing about a 5xx — <c>x-ratelimit-reset-requests</c> / <c>x-ratelimit-reset-tokens</c> (seconds or
/// the duration form <c>1s</c>, <c>6m0s</c>, <c>20ms</c>). The first header that parses wins; the result is clamped to
/// [0, max].
/// </remarks>
internal static class ThrottleSignalParser
{
    /// <summary>
    /// Reads the cooldown a response asks for.
    /// </summary>
    /// <param name="response">The response.</param>
    /// <param name="now">The current time, against which an HTTP-date is evaluated.</param>
    /// <param name="maxCooldown">The upper clamp.</param>
    /// <param name="cooldown">The cooldown, in [0, <paramref name="maxCooldown"/>].</param>
    /// <returns><see langword="true"/> when a throttle signal was found and parsed.</returns>
    public static bool TryGetCooldown(HttpResponseMessage response, DateTimeOffset now, TimeSpan maxCooldown, out TimeSpan cooldown)
    {
        if (TryGetRetryAfter(response.Headers, now, out var seconds) ||
            (response.StatusCode == HttpStatusCode.TooManyRequests && TryGetRateLimitReset(response.Headers, out seconds)))
        {
            cooldown = Clamp(seconds, maxCooldown);
            return true;
        }

        cooldown = default;
        return false;
    }

    /// <summary>
    /// Reads the explicit "come back later" headers: <c>retry-after-ms</c>, <c>x-ms-retry-after-ms</c>, <c>Retry-After</c>.
    /// </summary>
    public static bool TryGetRetryAfter(HttpResponseHeaders headers, DateTimeOffset now, out double seconds)
    {
        // A negative delay is not a signal (RFC 9110 allows none): the next header, if any, decides.
        if ((TryGetNumber(headers, PriorityRoutingConstants.RetryAfterMillisecondsHeader, out var milliseconds) && milliseconds >= 0) ||
            (TryGetNumber(headers, PriorityRoutingConstants.MsRetryAfterMillisecondsHeader, out milliseconds) && milliseconds >= 0))
        {
            seconds = milliseconds / 1000;
            return true;
        }

        if (TryGetFirstValue(headers, "Retry-After", out var retryAfter))
        {
            if (RetryConditionHeaderValue.TryParse(retryAfter, out var condition))
            {
                if (condition.Delta is { } delta)
                {
                    seconds = delta.TotalSeconds;
                    return true;
                }

                if (condition.Date is { } date)
                {
                    seconds = (date - now).TotalSeconds;
                    return true;
                }
            }

            // Not RFC 9110, but sent in the wild: fractional or out-of-range delta seconds.
            if (TryParseNumber(retryAfter, out seconds) && seconds >= 0)
            {
                return true;
            }
        }

        seconds = default;
        return false;
    }

    /// <summary>
    /// Reads OpenAI's <c>x-ratelimit-reset-*</c> headers. When <c>x-ratelimit-remaining-*</c> says which budget ran out,
    /// its reset wins; otherwise the later of the two, since the request may not pass before both have reset.
    /// </summary>
    public static bool TryGetRateLimitReset(HttpResponseHeaders headers, out double seconds)
    {
        var hasRequests = TryGetDuration(headers, PriorityRoutingConstants.RateLimitResetRequestsHeader, out var requests);
        var hasTokens = TryGetDuration(headers, PriorityRoutingConstants.RateLimitResetTokensHeader, out var tokens);
        var requestsExhausted = IsZero(headers, PriorityRoutingConstants.RateLimitRemainingRequestsHeader);
        var tokensExhausted = IsZero(headers, PriorityRoutingConstants.RateLimitRemainingTokensHeader);

        if (hasRequests && requestsExhausted && !(hasTokens && tokensExhausted))
        {
            seconds = requests;
            return true;
        }

        if (hasTokens && tokensExhausted && !(hasRequests && requestsExhausted))
        {
            seconds = tokens;
            return true;
        }

        if (hasRequests || hasTokens)
        {
            seconds = Math.Max(hasRequests ? requests : 0, hasTokens ? tokens : 0);
            return true;
        }

        seconds = default;
        return false;
    }

    /// <summary>
    /// Reads a budget that a response reports as exhausted (<c>x-ratelimit-remaining-requests: 0</c> or
    /// <c>x-ratelimit-remaining-tokens: 0</c>) and the matching reset; the later one when both are exhausted.
    /// </summary>
    /// <returns><see langword="true"/> when a budget is exhausted and its reset parses.</returns>
    public static bool TryGetExhaustedBudgetReset(HttpResponseHeaders headers, TimeSpan maxCooldown, out TimeSpan cooldown)
    {
        var found = false;
        var seconds = 0d;
        if (IsZero(headers, PriorityRoutingConstants.RateLimitRemainingRequestsHeader) &&
            TryGetDuration(headers, PriorityRoutingConstants.RateLimitResetRequestsHeader, out var requests))
        {
            seconds = requests;
            found = true;
        }

        if (IsZero(headers, PriorityRoutingConstants.RateLimitRemainingTokensHeader) &&
            TryGetDuration(headers, PriorityRoutingConstants.RateLimitResetTokensHeader, out var tokens))
        {
            seconds = Math.Max(seconds, tokens);
            found = true;
        }

        cooldown = found ? Clamp(seconds, maxCooldown) : default;
        return found;
    }

    /// <summary>
    /// Parses a duration in seconds: a plain number (<c>1.5</c>) or Go's duration form used by OpenAI
    /// (<c>1s</c>, <c>6m0s</c>, <c>20ms</c>, <c>1h2m3.5s</c>).
    /// </summary>
    public static bool TryParseDuration(ReadOnlySpan<char> value, out double seconds)
    {
        value = value.Trim();
        if (TryParseNumber(value, out seconds))
        {
            return seconds >= 0;
        }

        seconds = 0;
        if (value.IsEmpty)
        {
            return false;
        }

        while (!value.IsEmpty)
        {
            var numberLength = 0;
            while (numberLength < value.Length && (char.IsAsciiDigit(value[numberLength]) || value[numberLength] == '.'))
            {
                numberLength++;
            }

            if (numberLength == 0 ||
                !double.TryParse(value[..numberLength], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number))
            {
                return false;
            }

            value = value[numberLength..];
            var unitLength = 0;
            while (unitLength < value.Length && char.IsLetter(value[unitLength]))
            {
                unitLength++;
            }

            double unit;
            switch (value[..unitLength])
            {
                case "h": unit = 3600; break;
                case "m": unit = 60; break;
                case "s": unit = 1; break;
                case "ms": unit = 1e-3; break;
                case "us" or "µs" or "μs": unit = 1e-6; break;
                case "ns": unit = 1e-9; break;
                default: return false;
            }

            seconds += number * unit;
            value = value[unitLength..];
        }

        return double.IsFinite(seconds);
    }

    private static TimeSpan Clamp(double seconds, TimeSpan max)
    {
        if (double.IsNaN(seconds) || seconds <= 0)
        {
            return TimeSpan.Zero;
        }

        // Compare before converting: TimeSpan.FromSeconds overflows on huge values.
        return seconds >= max.TotalSeconds ? max : TimeSpan.FromTicks((long)Math.Round(seconds * TimeSpan.TicksPerSecond));
    }

    private static bool TryGetNumber(HttpResponseHeaders headers, string name, out double value)
    {
        value = default;
        return TryGetFirstValue(headers, name, out var raw) && TryParseNumber(raw, out value);
    }

    internal static bool TryGetDuration(HttpResponseHeaders headers, string name, out double seconds)
    {
        seconds = default;
        return TryGetFirstValue(headers, name, out var raw) && TryParseDuration(raw, out seconds);
    }

    private static bool IsZero(HttpResponseHeaders headers, string name)
        => TryGetNumber(headers, name, out var value) && value == 0;

    private static bool TryParseNumber(ReadOnlySpan<char> value, out double number)
        => double.TryParse(value.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out number)
           && double.IsFinite(number);

    /// <summary>Reads a header's first value as sent (never validated, never throws).</summary>
    internal static bool TryGetFirstValue(HttpResponseHeaders headers, string name, out string value)
    {
        // NonValidated: garbage values never throw and are never rewritten by the typed parsers.
        if (headers.NonValidated.TryGetValues(name, out var values))
        {
            foreach (var item in values)
            {
                value = item;
                return true;
            }
        }

        value = string.Empty;
        return false;
    }
}
