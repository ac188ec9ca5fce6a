using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Time.Testing;
using Polly;
using Polly.PriorityRouting;

namespace PriorityRouting.Simulation;

/// <summary>
/// A latency simulation on the fake clock: three backends in one tier, one of them three times slower, requests one
/// after another through the real strategy; the transport advances the clock by each backend's time to first byte
/// (±20 % jitter, seeded). Compares weighted-random with latency-aware choice, then lets the slow backend recover.
/// </summary>
public static class LatencySimulation
{
    public const int Requests = 10_000;

    public const int RecoveryRequests = 300;

    public static readonly TimeSpan FastTimeToFirstByte = TimeSpan.FromMilliseconds(200);

    public static readonly TimeSpan SlowTimeToFirstByte = TimeSpan.FromMilliseconds(600);

    public static async Task<IReadOnlyList<LatencyResult>> RunAllAsync()
        => [await RunAsync(BackendSelectionMode.WeightedRandom), await RunAsync(BackendSelectionMode.LatencyAware)];

    public static async Task<LatencyResult> RunAsync(BackendSelectionMode mode, int seed = 42)
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var jitter = new Random(seed);
        var slow = SlowTimeToFirstByte;
        var transport = new LatencyTransport(time, host =>
        {
            var baseline = host == "slow" ? slow : FastTimeToFirstByte;
            return baseline * (0.8 + (0.4 * jitter.NextDouble()));
        });
        var options = new PriorityRoutingStrategyOptions
        {
            Backends =
            [
                new PriorityBackend { Name = "fast1", BaseAddress = new Uri("http://fast1/") },
                new PriorityBackend { Name = "fast2", BaseAddress = new Uri("http://fast2/") },
                new PriorityBackend { Name = "slow", BaseAddress = new Uri("http://slow/") },
            ],
            StateStore = new InMemoryBackendStateStore(),
            SelectionMode = mode,
            Randomizer = new Random(seed + 1).Next,
        };
        var pipeline = new ResiliencePipelineBuilder<HttpResponseMessage> { TimeProvider = time }.AddPriorityRouting(options).Build();
        using var client = new HttpClient(new ResilienceHandler(pipeline) { InnerHandler = transport }) { BaseAddress = new Uri("http://placeholder/") };

        // Warm-up: every backend measured a few times.
        for (var i = 0; i < 100; i++)
        {
            await SendAsync(client, time);
        }

        var latencies = new double[Requests];
        var toSlow = 0;
        for (var i = 0; i < Requests; i++)
        {
            var (backend, latency) = await SendAsync(client, time);
            latencies[i] = latency;
            toSlow += backend == "slow" ? 1 : 0;
        }

        slow = FastTimeToFirstByte;
        var recovered = new double[3];
        for (var i = 0; i < RecoveryRequests; i++)
        {
            var (backend, _) = await SendAsync(client, time);
            recovered[i / 100] += backend == "slow" ? 0.01 : 0;
        }

        Array.Sort(latencies);
        return new LatencyResult(
            mode.ToString(),
            Percentile(latencies, 0.50),
            Percentile(latencies, 0.95),
            Percentile(latencies, 0.99),
            Math.Round(latencies.Average(), 1),
            Math.Round((double)toSlow / Requests, 4),
            [.. recovered.Select(share => Math.Round(share, 2))]);
    }

    public static string Format(IReadOnlyList<LatencyResult> results)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Three backends in one tier: two with {FastTimeToFirstByte.TotalMilliseconds:0} ms to first byte, one with {SlowTimeToFirstByte.TotalMilliseconds:0} ms (each ±20 %); {Requests} requests after 100 of warm-up.");
        text.AppendLine();
        text.AppendLine("| Selection | p50 (ms) | p95 (ms) | p99 (ms) | mean (ms) | to the slow backend | once recovered: its share of requests 1–100 / 101–200 / 201–300 |");
        text.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
        foreach (var r in results)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"| {r.Mode} | {r.P50:0} | {r.P95:0} | {r.P99:0} | {r.Mean:0.0} | {r.SlowShare:P1} | {string.Join(" / ", r.RecoveredShares.Select(share => share.ToString("P0", CultureInfo.InvariantCulture)))} |");
        }

        return text.ToString();
    }

    private static double Percentile(double[] sorted, double quantile)
        => Math.Round(sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(quantile * sorted.Length) - 1)], 1);

    private static async Task<(string Backend, double LatencyMs)> SendAsync(HttpClient client, FakeTimeProvider time)
    {
        var started = time.GetTimestamp();
        using var response = await client.GetAsync("/chat").ConfigureAwait(false);
        var backend = await response.Content.ReadAsStringAsync().ConfigureAwait(false);
        return (backend, time.GetElapsedTime(started).TotalMilliseconds);
    }

    private sealed class LatencyTransport(FakeTimeProvider time, Func<string, TimeSpan> timeToFirstByte) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var host = request.RequestUri!.Host;
            time.Advance(timeToFirstByte(host));
            return Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent(host) });
        }
    }
}
