using System.Globalization;
using System.Net;
using CsCheck;

namespace Polly.PriorityRouting.Tests.Properties;

/// <summary>
/// The exhausted answer's two headers always agree: <c>Retry-After</c> is the time rounded up to whole seconds,
/// <c>retry-after-ms</c> the time rounded up to milliseconds plus 2 ms of slack for timers that fire early (0 stays 0).
/// </summary>
public class ExhaustedResponseProperties
{
    [Fact]
    public void Retry_after_and_retry_after_ms_agree()
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
                milliseconds.Should().Be(retryAfter == TimeSpan.Zero ? 0 : (long)Math.Ceiling(retryAfter.TotalMilliseconds) + ExhaustedResponse.TimerSlackMilliseconds);
                response.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(Math.Ceiling(retryAfter.TotalSeconds)));
                milliseconds.Should().BeGreaterThanOrEqualTo((long)response.Headers.RetryAfter.Delta!.Value.TotalMilliseconds - 1000 + 1);
                response.StatusCode.Should().Be(status);
                response.Headers.GetValues("x-priority-routing-exhausted").Should().Equal("true");
            },
            iter: 20_000);
    }
}
