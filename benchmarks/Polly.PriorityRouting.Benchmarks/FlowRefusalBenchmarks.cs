using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.DependencyInjection;
using Polly.PriorityRouting.Redis;

namespace Polly.PriorityRouting.Benchmarks;

/// <summary>
/// What a refusal costs on a continuous budget (a flow) with claims queued, against a real local <c>redis-server</c>:
/// the script may read the claims' set to see whether the request fits a gap no claim needs by its moment
/// (docs/distributed.md, "Claims on a continuous budget"). A foreground request of 100,000 tokens, no claimant, refused
/// on a flow of 1,000,000 tokens coming back in 240 s (about 4,167 a second).
/// </summary>
/// <remarks>
/// <para>
/// The queues: none; 512 claims on a bucket that holds little now (the script reads none of them: the bucket alone is
/// short of the request); 512 claims on a bucket that holds 200,000 now, which the first claim (300,000, due in 30 s)
/// needs at its moment (the script reads one page and stops there). The other claims are of 100 tokens each, queued right
/// behind the first; none is due while a case runs.
/// </para>
/// <para>
/// Needs a Redis at <c>PRIORITY_ROUTING_REDIS</c> (default <c>127.0.0.1:6390</c>):
/// <c>redis-server --port 6390 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes</c>.
/// </para>
/// </remarks>
[MemoryDiagnoser]
[MinColumn]
[MedianColumn]
[SimpleJob(warmupCount: 3, iterationCount: 12)]
public class FlowRefusalBenchmarks
{
    private const long Limit = 1_000_000;
    private const long Request = 100_000;
    private static readonly BackendStateKey Key = new("openai@https://openai.example", "gpt-4o");

    private readonly string _configuration = Environment.GetEnvironmentVariable("PRIORITY_ROUTING_REDIS") ?? "127.0.0.1:6390";
    private ServiceProvider? _services;
    private IBackendReservationStore _store = null!;

    /// <summary>The claims queued on the flow, and what its bucket holds now.</summary>
    public enum QueuedClaims
    {
        /// <summary>No claim; the bucket holds little.</summary>
        None,

        /// <summary>512 claims; the bucket holds little now.</summary>
        ClaimsBucketShort,

        /// <summary>512 claims; the bucket holds 200,000 now, which the first claim needs at its moment.</summary>
        ClaimsFirstNeedsTheRoom,
    }

    /// <summary>Gets or sets the flow's queue.</summary>
    [Params(QueuedClaims.None, QueuedClaims.ClaimsBucketShort, QueuedClaims.ClaimsFirstNeedsTheRoom)]
    public QueuedClaims Claims { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _services = new ServiceCollection()
            .AddPriorityRoutingRedisStore(_configuration, options =>
            {
                options.KeyPrefix = $"bench:{Guid.NewGuid():N}:";
                options.Reservations = true;
                options.ReservationTimeout = TimeSpan.FromSeconds(1);
            })
            .BuildServiceProvider();
        _store = (IBackendReservationStore)_services.GetRequiredService<IBackendStateStore>();

        // The store connects in the background: reserve until Redis counts a reservation.
        Until(() => Reserve(new BackendStateKey("probe@http://probe"), 1, claimant: 0).Sequence != 0, "Redis counts a reservation");

        // Two reports naming full moments a minute apart, less than the 3 minutes the first says: continuous, a flow. The
        // second says what the bucket holds now.
        var holds = Claims == QueuedClaims.ClaimsFirstNeedsTheRoom ? 200_000 : 0;
        foreach (var (remaining, reset) in new[] { (250_000L, 180), (holds, 240) })
        {
            var reservation = Reserve(Key, 1, claimant: 0);
            _store.Correct(reservation, new BackendReservationReport(remaining, Limit, TimeSpan.FromSeconds(reset), null, null, TimeSpan.Zero, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow));

            // Each report its own flush: continuity is learned from two reports in turn.
            Thread.Sleep(1_000);
        }

        if (Claims != QueuedClaims.None)
        {
            // Due in 30 s (what is spent beyond the limit with it, at the rate), once the budget flows.
            var first = Claims == QueuedClaims.ClaimsFirstNeedsTheRoom ? 300_000 : 125_000;
            Until(() => Reserve(Key, first, claimant: 1).HoldsClaim, "the budget flows (the first claim is made)");
            for (var claimant = 2; claimant <= 512; claimant++)
            {
                if (!Reserve(Key, 100, claimant).HoldsClaim)
                {
                    throw new InvalidOperationException($"Claim {claimant} was not made.");
                }
            }
        }

        if (Refuse().Status != BackendReservationStatus.Refused)
        {
            throw new InvalidOperationException("The measured request was not refused.");
        }
    }

    [GlobalCleanup]
    public void Cleanup() => _services?.Dispose();

    [Benchmark(Description = "refused, no claimant")]
    public BackendReservation Refuse() => Reserve(Key, Request, claimant: 0);

    private static void Until(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException($"Not within 10 s: {what}.");
            }

            Thread.Sleep(50);
        }
    }

    private BackendReservation Reserve(BackendStateKey key, long cost, long claimant)
        => _store.ReserveAsync(key, cost, 0, 0, claimant, DateTimeOffset.UtcNow, default).AsTask().GetAwaiter().GetResult();
}
