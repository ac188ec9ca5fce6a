using System.Globalization;
using System.Net;
using CsCheck;
using Polly.PriorityRouting.Tests.Signals;

namespace Polly.PriorityRouting.Tests.Properties;

/// <summary>
/// Properties of <see cref="ThrottleSignalParser"/> over generated headers: whatever a backend sends, the parser never
/// throws and a cooldown always lands in [0, MaxCooldown].
/// </summary>
/// <remarks>
/// Seeds are random on each run so that CI keeps exploring; a failure prints the seed and the shrunk sample, and
/// passing that seed to <c>Sample</c> replays it.
/// </remarks>
public class ThrottleSignalParserProperties
{
    // The never-throws properties run 100,000 samples each; the exact-value oracles need fewer to cover their space.
    private const long Iterations = 100_000;

    private const long OracleIterations = 20_000;

    private static readonly DateTimeOffset Epoch = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);

    private static readonly string[] KnownNames =
    [
        "retry-after-ms", "x-ms-retry-after-ms", "Retry-After", "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens",
        "x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens",
    ];

    private static readonly string[] DurationUnits = ["h", "m", "s", "ms", "us", "µs", "μs", "ns"];

    private static readonly string[] BogusUnits = ["", "d", "H", "sec", "min", "mss", "1", "-", " ", "ss"];

    /// <summary>Known names in any letter case, plus random ones (valid tokens and garbage the header API refuses).</summary>
    private static readonly Gen<string> HeaderName = Gen.Frequency(
        (10, Gen.OneOf(KnownNames)),
        (3, Gen.OneOf(KnownNames).Select(Gen.Bool.Array[32], (name, upper) =>
            string.Concat(name.Select((c, i) => upper[i % 32] ? char.ToUpperInvariant(c) : c)))),
        (2, Gen.String[Gen.Char["abcdefghijklmnopqrstuvwxyz-0123456789"], 1, 24]),
        (1, Gen.String));

    /// <summary>Go's duration form, with the value it stands for: <c>1h2m3.5s</c> → 3723.5.</summary>
    private static readonly Gen<(string Text, double Seconds)> GoDuration =
        Gen.Select(Gen.Int[0, 100_000], Gen.Int[0, 999], Gen.Bool, Gen.OneOf(DurationUnits))
            .Select(t => (Number: t.Item3 ? $"{t.Item1}.{t.Item2:D3}" : t.Item1.ToString(CultureInfo.InvariantCulture),
                          Value: t.Item1 + (t.Item3 ? t.Item2 / 1000.0 : 0),
                          Unit: t.Item4))
            .Array[1, 5]
            .Select(parts => (
                string.Concat(parts.Select(p => p.Number + p.Unit)),
                parts.Sum(p => p.Value * UnitSeconds(p.Unit))));

    private static readonly Gen<string> HeaderValue = Gen.Frequency(
        (4, Gen.Long.Select(n => n.ToString(CultureInfo.InvariantCulture))),
        (4, Gen.Int[-1_000, 1_000_000].Select(n => n.ToString(CultureInfo.InvariantCulture))),
        (3, Gen.Double[-1e7, 1e7].Select(d => d.ToString("R", CultureInfo.InvariantCulture))),
        (2, Gen.Double.Select(d => d.ToString("E", CultureInfo.InvariantCulture))),
        (1, Gen.Double.Select(d => d.ToString(CultureInfo.InvariantCulture))),
        (1, Gen.Int[1, 400].Select(n => new string('9', n))),
        (1, Gen.OneOf("1e309", "-1e309", "NaN", "Infinity", "-Infinity", "∞", "0x10", "1_000", "+5", "-0", ".5", "5.",
            "", " ", "0", "1,5", "٣", "１２")),
        (3, Gen.DateTimeOffset.Select(d => d.ToString("r", CultureInfo.InvariantCulture))),
        (3, Gen.Int[-200_000, 200_000].Select(s => Epoch.AddSeconds(s).ToString("r", CultureInfo.InvariantCulture))),
        (4, GoDuration.Select(d => d.Text)),
        (2, Gen.Select(Gen.String[Gen.Char["0123456789.hmsuµμn"], 0, 16], Gen.OneOf(BogusUnits), (a, b) => a + b)),
        (2, Gen.String),
        (1, Gen.String[Gen.Char, 0, 40]),
        (1, Gen.Select(Gen.OneOf(" ", "\t", "  "), Gen.Int[0, 3_600], (ws, n) => ws + n.ToString(CultureInfo.InvariantCulture) + ws)));

    private static readonly Gen<TimeSpan> MaxCooldown = Gen.Frequency(
        (1, Gen.Const(TimeSpan.Zero)),
        (1, Gen.Const(TimeSpan.FromMinutes(5))),
        (1, Gen.Long[0, TimeSpan.TicksPerSecond * 10].Select(TimeSpan.FromTicks)),
        (2, Gen.Long[0, TimeSpan.TicksPerDay].Select(TimeSpan.FromTicks)));

    private static readonly Gen<DateTimeOffset> Now = Gen.Frequency(
        (4, Gen.Int[-1_000_000, 1_000_000].Select(s => Epoch.AddSeconds(s))),
        (1, Gen.Long[new DateTime(1971, 1, 1).Ticks, new DateTime(2200, 1, 1).Ticks].Select(t => new DateTimeOffset(t, TimeSpan.Zero))));

    private static readonly Gen<int> StatusCode = Gen.Frequency(
        (4, Gen.Const(429)),
        (2, Gen.OneOf(408, 500, 502, 503, 504, 200, 404)),
        (1, Gen.Int[0, 999]));

    private static readonly Gen<(int Status, (string Name, string Value)[] Headers, DateTimeOffset Now, TimeSpan Max)> Responses =
        Gen.Select(StatusCode, Gen.Select(HeaderName, HeaderValue).Array[0, 6], Now, MaxCooldown);

    [Fact]
    public void TryGetCooldown_never_throws_and_stays_within_zero_and_max()
    {
        Responses.Sample(
            (status, headers, now, max) =>
            {
                using var response = ThrottleSignalParserTests.Response((HttpStatusCode)status, headers); // refuses invalid names, never throws

                var found = ThrottleSignalParser.TryGetCooldown(response, now, max, out var cooldown);

                if (found)
                {
                    cooldown.Should().BeGreaterThanOrEqualTo(TimeSpan.Zero).And.BeLessThanOrEqualTo(max);
                }
                else
                {
                    cooldown.Should().Be(TimeSpan.Zero);
                }

                var hasRetryAfter = ThrottleSignalParser.TryGetRetryAfter(response.Headers, now, out var seconds);
                if (hasRetryAfter)
                {
                    double.IsFinite(seconds).Should().BeTrue();
                    found.Should().BeTrue("an explicit Retry-After family header is a signal on any status");
                }
            },
            iter: Iterations,
            print: Print);
    }

    [Fact]
    public void TryParseDuration_never_throws_and_returns_finite_values()
    {
        HeaderValue.Sample(
            value =>
            {
                if (ThrottleSignalParser.TryParseDuration(value, out var seconds))
                {
                    double.IsFinite(seconds).Should().BeTrue();
                }
            },
            iter: Iterations);
    }

    [Fact]
    public void TryParseDuration_reads_go_durations_exactly()
    {
        GoDuration.Sample(
            (text, expected) =>
            {
                ThrottleSignalParser.TryParseDuration(text, out var seconds).Should().BeTrue();
                seconds.Should().BeApproximately(expected, Math.Max(1e-9, expected * 1e-12));
            },
            iter: OracleIterations);
    }

    [Fact]
    public void Milliseconds_headers_are_read_exactly_and_clamped()
    {
        Gen.Select(Gen.OneOf("retry-after-ms", "x-ms-retry-after-ms"), Gen.Double[-1e6, 1e9], MaxCooldown).Sample(
            (name, milliseconds, max) =>
            {
                using var response = ThrottleSignalParserTests.Response(HttpStatusCode.OK, [(name, milliseconds.ToString("R", CultureInfo.InvariantCulture))]);

                // A negative delay is no signal at all (the next header would decide); any other is read and clamped.
                ThrottleSignalParser.TryGetCooldown(response, Epoch, max, out var cooldown).Should().Be(milliseconds >= 0);

                var expected = Math.Clamp(milliseconds, 0, max.TotalMilliseconds);
                cooldown.TotalMilliseconds.Should().BeApproximately(expected, 2e-4);
            },
            iter: OracleIterations);
    }

    [Fact]
    public void Http_dates_are_evaluated_against_now()
    {
        Gen.Select(Gen.Int[-100_000, 100_000], Now).Sample(
            (offsetSeconds, now) =>
            {
                var date = new DateTimeOffset(now.UtcTicks / TimeSpan.TicksPerSecond * TimeSpan.TicksPerSecond, TimeSpan.Zero)
                    .AddSeconds(offsetSeconds);
                using var response = ThrottleSignalParserTests.Response(HttpStatusCode.TooManyRequests, [("Retry-After", date.ToString("r", CultureInfo.InvariantCulture))]);

                ThrottleSignalParser.TryGetCooldown(response, now, TimeSpan.FromDays(1), out var cooldown).Should().BeTrue();

                var expected = Math.Clamp((date - now).TotalSeconds, 0, TimeSpan.FromDays(1).TotalSeconds);
                cooldown.TotalSeconds.Should().BeApproximately(expected, 1e-6);
            },
            iter: OracleIterations);
    }

    private static double UnitSeconds(string unit) => unit switch
    {
        "h" => 3600,
        "m" => 60,
        "s" => 1,
        "ms" => 1e-3,
        "ns" => 1e-9,
        _ => 1e-6,
    };

    private static string Print((int Status, (string Name, string Value)[] Headers, DateTimeOffset Now, TimeSpan Max) sample)
        => $"{sample.Status} now={sample.Now:O} max={sample.Max} " +
           string.Join("; ", sample.Headers.Select(h => $"{Escape(h.Name)}: {Escape(h.Value)}"));

    private static string Escape(string value)
        => string.Concat(value.Select(c => c is >= ' ' and <= '~' ? c.ToString() : $"\\u{(int)c:x4}"));
}
