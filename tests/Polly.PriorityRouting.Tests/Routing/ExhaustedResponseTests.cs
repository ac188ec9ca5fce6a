using System.Net;

namespace Polly.PriorityRouting.Tests.Routing;

public class ExhaustedResponseTests
{
    [Theory]
    // retry-after-ms carries 2 ms of slack for timers that fire early; Retry-After is the exact time rounded up.
    [InlineData(HttpStatusCode.TooManyRequests, 2_500, "3", "2502", "requests", "all_backends_throttled", "All backends are throttled. Retry after 3 seconds.")]
    [InlineData(HttpStatusCode.ServiceUnavailable, 1_000, "1", "1002", "server_error", "all_backends_unavailable", "All backends are unavailable. Retry after 1 second.")]
    [InlineData(HttpStatusCode.TooManyRequests, 0, "0", "0", "requests", "all_backends_throttled", "All backends are throttled. Retry after 0 seconds.")]
    [InlineData(HttpStatusCode.TooManyRequests, 0.2, "1", "3", "requests", "all_backends_throttled", "All backends are throttled. Retry after 1 second.")]
    public async Task Carries_status_retry_headers_and_the_error_body_of_OpenAI(
        HttpStatusCode status,
        double milliseconds,
        string retryAfter,
        string retryAfterMs,
        string type,
        string code,
        string message)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "http://placeholder/x");

        using var response = ExhaustedResponse.Create(status, TimeSpan.FromMilliseconds(milliseconds), request);

        response.StatusCode.Should().Be(status);
        response.RequestMessage.Should().BeSameAs(request);
        response.Headers.GetValues("Retry-After").Should().Equal(retryAfter);
        response.Headers.GetValues("retry-after-ms").Should().Equal(retryAfterMs);
        response.Headers.GetValues("x-priority-routing-exhausted").Should().Equal("true");
        response.Content.Headers.ContentType!.ToString().Should().Be("application/json; charset=utf-8");
        (await response.Content.ReadAsStringAsync()).Should().Be(
            "{\"error\":{\"message\":\"" + message + "\",\"type\":\"" + type + "\",\"param\":null,\"code\":\"" + code + "\"}}");
    }
}
