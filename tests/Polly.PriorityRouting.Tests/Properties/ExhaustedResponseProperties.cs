using System.Globalization;
using System.Net;
using CsCheck;

namespace Polly.PriorityRouting.Tests.Properties;

/// <summary>The exhausted answer's two headers always agree: <c>Retry-After = ceil(retry-after-ms / 1000)</c>.</summary>
public class ExhaustedResponseProperties
{
    [Fact]
    public void Retry_after_is_the_milliseconds_rounded_up_to_whole_seconds()
    {
        Gen.Select(
            Gen.Frequency(
                (3, Gen.Long[0, TimeSpan.TicksPerDay]),
                (1, Gen.Long[0, 100].Select(s => s * TimeSpan.TicksPerSecond)),
                (1, Gen.Long[0, 100_000].Select(ms => ms * TimeSpan.TicksPerMillisecond)),
                (1, Gen.Long[0, 100_000].Select(ms => (ms * TimeSpan.TicksPerMillisecond) + 1))),
            Gen.OneOf(HttpStatusCode.TooManyRequests, HttpStatusCode.ServiceUnavailable)).Sample(
            (ticks, status) =>
            {
                var retryAfter = TimeSpan.FromTicks(ticks);
                using var request = new HttpRequestMessage(HttpMethod.Get, "http://placeholder/");
                using var response = ExhaustedResponse.Create(status, retryAfter, request);

                var milliseconds = long.Parse(response.Headers.GetValues("retry-after-ms").Single(), CultureInfo.InvariantCulture);
                milliseconds.Should().Be((long)Math.Ceiling(retryAfter.TotalMilliseconds));
                milliseconds.Should().BeGreaterThanOrEqualTo(0);
                var seconds = (long)Math.Ceiling(milliseconds / 1000.0);
                response.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(seconds));
                response.StatusCode.Should().Be(status);
                response.Headers.GetValues("x-priority-routing-exhausted").Should().Equal("true");
            },
            iter: 20_000);
    }
}
