using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;

namespace Polly.PriorityRouting;

/// <summary>
/// The one honest answer when no backend is left: 429 or 503 with the time until the soonest backend frees up, in
/// every form clients read (<c>Retry-After</c> in whole seconds, <c>retry-after-ms</c>), and the error body of OpenAI
/// (<c>{"error":{"message","type","param","code"}}</c>).
/// </summary>
internal static class ExhaustedResponse
{
    public const string ThrottledCode = "all_backends_throttled";

    public const string UnavailableCode = "all_backends_unavailable";

    /// <summary>
    /// The error <c>type</c> of the 429: OpenAI's type for a request-rate limit, which SDKs print before the code
    /// (<c>HTTP 429 (requests: all_backends_throttled)</c>).
    /// </summary>
    public const string ThrottledType = "requests";

    /// <summary>The error <c>type</c> of the 503: OpenAI's type for a service that cannot answer now.</summary>
    public const string UnavailableType = "server_error";

    /// <summary>
    /// Added to <c>retry-after-ms</c>: timers fire up to a millisecond early, and a client that waits exactly the
    /// advertised time must find the backend free — not get a second answer saying "retry after 1 ms", which a
    /// whole-second client turns into a lost second.
    /// </summary>
    public const int TimerSlackMilliseconds = 2;

    public static HttpResponseMessage Create(HttpStatusCode statusCode, TimeSpan retryAfter, HttpRequestMessage request)
    {
        // Whole seconds round up: a client that waits the advertised time must find a backend free.
        var seconds = (long)Math.Ceiling(retryAfter.TotalSeconds);
        var milliseconds = retryAfter > TimeSpan.Zero ? (long)Math.Ceiling(retryAfter.TotalMilliseconds) + TimerSlackMilliseconds : 0;
        var throttled = statusCode == HttpStatusCode.TooManyRequests;
        var code = throttled ? ThrottledCode : UnavailableCode;
        var type = throttled ? ThrottledType : UnavailableType;
        var what = throttled ? "throttled" : "unavailable";
        var message = string.Create(
            CultureInfo.InvariantCulture,
            $"All backends are {what}. Retry after {seconds} second{(seconds == 1 ? string.Empty : "s")}.");

        var response = new HttpResponseMessage(statusCode)
        {
            RequestMessage = request,
            // The shape OpenAI and Azure OpenAI answer errors with, field for field, so their SDKs show type, code and message.
            Content = new StringContent(
                "{\"error\":{\"message\":\"" + message + "\",\"type\":\"" + type + "\",\"param\":null,\"code\":\"" + code + "\"}}",
                Encoding.UTF8,
                "application/json"),
        };

        response.Headers.RetryAfter = new RetryConditionHeaderValue(TimeSpan.FromSeconds(Math.Min(seconds, int.MaxValue)));
        response.Headers.TryAddWithoutValidation(
            PriorityRoutingConstants.RetryAfterMillisecondsHeader,
            milliseconds.ToString(CultureInfo.InvariantCulture));
        response.Headers.TryAddWithoutValidation(PriorityRoutingConstants.ExhaustedHeader, "true");
        return response;
    }
}
