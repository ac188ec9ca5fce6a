using System.Net;

namespace Polly.PriorityRouting.Tests.Signals;

public class ThrottleSignalParserTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Max = TimeSpan.FromMinutes(5);

    [Theory]
    [InlineData("Retry-After", "7", 7_000)]
    [InlineData("Retry-After", "0", 0)]
    [InlineData("Retry-After", " 12 ", 12_000)]
    [InlineData("Retry-After", "1.5", 1_500)]
    [InlineData("Retry-After", "Tue, 24 Nov 2026 12:00:30 GMT", 30_000)]
    [InlineData("Retry-After", "Tue, 24 Nov 2026 11:59:00 GMT", 0)]
    [InlineData("retry-after-ms", "250", 250)]
    [InlineData("retry-after-ms", "1234.5", 1_234.5)]
    [InlineData("x-ms-retry-after-ms", "800", 800)]
    [InlineData("x-ratelimit-reset-requests", "1s", 1_000)]
    [InlineData("x-ratelimit-reset-requests", "4m30s", 270_000)]
    [InlineData("x-ratelimit-reset-requests", "6m0s", 300_000)]
    [InlineData("x-ratelimit-reset-tokens", "20ms", 20)]
    [InlineData("x-ratelimit-reset-tokens", "1.5", 1_500)]
    [InlineData("x-ratelimit-reset-requests", "1m30.5s", 90_500)]
    [InlineData("x-ratelimit-reset-requests", "2h", 300_000)]
    [InlineData("Retry-After", "99999999999", 300_000)]
    [InlineData("retry-after-ms", "1e300", 300_000)]
    public void Parses_every_signal_format_and_clamps(string header, string value, double expectedMilliseconds)
    {
        using var response = Response(HttpStatusCode.TooManyRequests, (header, value));

        ThrottleSignalParser.TryGetCooldown(response, Now, Max, out var cooldown).Should().BeTrue();

        cooldown.TotalMilliseconds.Should().BeApproximately(expectedMilliseconds, 0.001);
    }

    [Theory]
    [InlineData("Retry-After", "soon")]
    [InlineData("Retry-After", "")]
    [InlineData("Retry-After", "NaN")]
    [InlineData("Retry-After", "Infinity")]
    [InlineData("Retry-After", "Tue, 99 Foo 2026")]
    [InlineData("retry-after-ms", "abc")]
    [InlineData("retry-after-ms", "∞")]
    [InlineData("x-ms-retry-after-ms", "1,5")]
    [InlineData("x-ratelimit-reset-requests", "6m0")]
    [InlineData("x-ratelimit-reset-requests", "6x")]
    [InlineData("x-ratelimit-reset-requests", "s")]
    [InlineData("x-ratelimit-reset-tokens", "..s")]
    [InlineData("x-ratelimit-reset-tokens", "-1s")]
    [InlineData("x-ratelimit-reset-tokens", "-1.5")]
    [InlineData("retry-after-ms", "-5")]
    [InlineData("Retry-After", "-3")]
    [InlineData("x-ratelimit-reset-tokens", "\u0000\u0001")]
    public void Garbage_never_throws_and_yields_no_signal(string header, string value)
    {
        using var response = Response(HttpStatusCode.TooManyRequests, (header, value));

        ThrottleSignalParser.TryGetCooldown(response, Now, Max, out var cooldown).Should().BeFalse();
        cooldown.Should().Be(TimeSpan.Zero);
    }

    [Fact]
    public void No_headers_yields_no_signal()
    {
        using var response = Response(HttpStatusCode.TooManyRequests);

        ThrottleSignalParser.TryGetCooldown(response, Now, Max, out _).Should().BeFalse();
    }

    [Fact]
    public void Milliseconds_win_over_seconds()
    {
        using var response = Response(
            HttpStatusCode.TooManyRequests,
            ("Retry-After", "3"),
            ("retry-after-ms", "2500"),
            ("x-ratelimit-reset-requests", "10s"));

        ThrottleSignalParser.TryGetCooldown(response, Now, Max, out var cooldown).Should().BeTrue();

        cooldown.Should().Be(TimeSpan.FromMilliseconds(2500));
    }

    [Fact]
    public void Retry_after_wins_over_rate_limit_reset()
    {
        using var response = Response(HttpStatusCode.TooManyRequests, ("Retry-After", "3"), ("x-ratelimit-reset-requests", "10s"));

        ThrottleSignalParser.TryGetCooldown(response, Now, Max, out var cooldown).Should().BeTrue();

        cooldown.Should().Be(TimeSpan.FromSeconds(3));
    }

    [Fact]
    public void A_negative_retry_after_falls_back_to_the_next_signal()
    {
        using var response = Response(HttpStatusCode.TooManyRequests, ("Retry-After", "-5"), ("x-ratelimit-reset-requests", "30s"));

        ThrottleSignalParser.TryGetCooldown(response, Now, Max, out var cooldown).Should().BeTrue();

        cooldown.Should().Be(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public void Milliseconds_convert_to_the_nearest_tick()
    {
        using var response = Response(HttpStatusCode.TooManyRequests, ("retry-after-ms", "33907"));

        ThrottleSignalParser.TryGetCooldown(response, Now, Max, out var cooldown).Should().BeTrue();

        cooldown.Should().Be(TimeSpan.FromMilliseconds(33907));
    }

    [Fact]
    public void Garbage_retry_after_falls_back_to_the_next_signal()
    {
        using var response = Response(HttpStatusCode.TooManyRequests, ("Retry-After", "later"), ("x-ratelimit-reset-tokens", "4s"));

        ThrottleSignalParser.TryGetCooldown(response, Now, Max, out var cooldown).Should().BeTrue();

        cooldown.Should().Be(TimeSpan.FromSeconds(4));
    }

    [Theory]
    [InlineData("0", "5", 2_000)]
    [InlineData("5", "0", 7_000)]
    [InlineData("0", "0", 7_000)]
    [InlineData(null, null, 7_000)]
    public void Remaining_headers_pick_the_exhausted_budget(string? remainingRequests, string? remainingTokens, double expectedMilliseconds)
    {
        var headers = new List<(string, string)> { ("x-ratelimit-reset-requests", "2s"), ("x-ratelimit-reset-tokens", "7s") };
        if (remainingRequests is not null)
        {
            headers.Add(("x-ratelimit-remaining-requests", remainingRequests));
        }

        if (remainingTokens is not null)
        {
            headers.Add(("x-ratelimit-remaining-tokens", remainingTokens));
        }

        using var response = Response(HttpStatusCode.TooManyRequests, [.. headers]);

        ThrottleSignalParser.TryGetCooldown(response, Now, Max, out var cooldown).Should().BeTrue();

        cooldown.TotalMilliseconds.Should().Be(expectedMilliseconds);
    }

    [Fact]
    public void Rate_limit_reset_is_ignored_on_server_errors()
    {
        // OpenAI sends x-ratelimit-* on every answer: on a 500 they say nothing about when the backend recovers.
        using var response = Response(HttpStatusCode.InternalServerError, ("x-ratelimit-reset-requests", "30s"));

        ThrottleSignalParser.TryGetCooldown(response, Now, Max, out _).Should().BeFalse();
    }

    [Fact]
    public void Retry_after_counts_on_server_errors()
    {
        using var response = Response(HttpStatusCode.ServiceUnavailable, ("Retry-After", "12"));

        ThrottleSignalParser.TryGetCooldown(response, Now, Max, out var cooldown).Should().BeTrue();

        cooldown.Should().Be(TimeSpan.FromSeconds(12));
    }

    [Fact]
    public void Clamps_to_a_zero_maximum()
    {
        using var response = Response(HttpStatusCode.TooManyRequests, ("Retry-After", "12"));

        ThrottleSignalParser.TryGetCooldown(response, Now, TimeSpan.Zero, out var cooldown).Should().BeTrue();

        cooldown.Should().Be(TimeSpan.Zero);
    }

    [Fact]
    public void First_of_repeated_values_counts()
    {
        using var response = Response(HttpStatusCode.TooManyRequests, ("retry-after-ms", "100"), ("retry-after-ms", "900"));

        ThrottleSignalParser.TryGetCooldown(response, Now, Max, out var cooldown).Should().BeTrue();

        cooldown.Should().Be(TimeSpan.FromMilliseconds(100));
    }

    [Fact]
    public void Random_garbage_never_throws_and_stays_within_bounds()
    {
        var random = new Random(1234);
        const string Alphabet = "0123456789.,-+eE smhunµ:GMTFriNovabc\t";
        string[] names = ["Retry-After", "retry-after-ms", "x-ms-retry-after-ms", "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"];
        for (var i = 0; i < 20_000; i++)
        {
            var chars = new char[random.Next(0, 12)];
            for (var c = 0; c < chars.Length; c++)
            {
                chars[c] = Alphabet[random.Next(Alphabet.Length)];
            }

            using var response = Response(HttpStatusCode.TooManyRequests, (names[random.Next(names.Length)], new string(chars)));

            if (ThrottleSignalParser.TryGetCooldown(response, Now, Max, out var cooldown))
            {
                cooldown.Should().BeGreaterThanOrEqualTo(TimeSpan.Zero).And.BeLessThanOrEqualTo(Max);
            }
        }
    }

    [Theory]
    [InlineData("1s", 1)]
    [InlineData("6m0s", 360)]
    [InlineData("20ms", 0.02)]
    [InlineData("1h2m3.5s", 3723.5)]
    [InlineData("500us", 0.0005)]
    [InlineData("500µs", 0.0005)]
    [InlineData("10ns", 1e-8)]
    [InlineData("2.25", 2.25)]
    public void Parses_openai_durations(string value, double expectedSeconds)
    {
        ThrottleSignalParser.TryParseDuration(value, out var seconds).Should().BeTrue();
        seconds.Should().BeApproximately(expectedSeconds, 1e-12);
    }

    internal static HttpResponseMessage Response(HttpStatusCode status, params (string Name, string Value)[] headers)
    {
        var response = new HttpResponseMessage(status);
        foreach (var (name, value) in headers)
        {
            response.Headers.TryAddWithoutValidation(name, value);
        }

        return response;
    }
}
