using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.DependencyInjection;
using Polly.PriorityRouting.Redis;

namespace Polly.PriorityRouting.Benchmarks;

/// <summary>
/// What a refusal costs on a continuous budget (a flow) with claims queued: the script then reads the claims' set to see
/// whether the request fits a gap no claim needs by its moment (docs/distributed.md, "Claims on a continuous budget"). A
/// foreground request of 100,000 tokens, no claimant, against a real local <c>redis-server</c>, refused with 0, 64 or 512
/// claims queued (512 is the most the script reads; with 0 it reads none).
/// </summary>
/// <remarks>
/// <para>
/// The flow: a limit of 1,000,000 tokens, all spent, coming back in 240 s (about 4,167 a second, so that the measured
/// request stays refused for 24 s without claims); the first claim of 150,000 tokens waits 36 s, and the others (100 tokens
/// each) queue right behind it, so none is due while a case runs.
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
    private static readonly BackendStateKey Key = new("openai@https://openai.example", "gpt-4o");

    private readonly string _configuration = Environment.GetEnvironmentVariable("PRIORITY_ROUTING_REDIS") ?? "127.0.0.1:6390";
    private ServiceProvider? _services;
    private IBackendReservationStore _store = null!;

    /// <summary>Gets or sets how many claims are queued on the flow.</summary>
    [Params(0, 64, 512)]
    public int ClaimsQueued { get; set; }

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
        var connected = DateTime.UtcNow.AddSeconds(10);
        while (_store.ReserveAsync(new BackendStateKey("probe@http://probe"), 1, 0, 0, DateTimeOffset.UtcNow, default).AsTask().GetAwaiter().GetResult().Sequence == 0)
        {
            if (DateTime.UtcNow > connected)
            {
                throw new InvalidOperationException($"Redis at {_configuration} did not answer a reservation within 10 s.");
            }

            Thread.Sleep(50);
        }

        // Two reports naming full moments a minute apart, less than the 3 minutes the first says: continuous, a flow of
        // 1,000,000 per 240 s.
        foreach (var (remaining, reset) in new[] { (250_000L, 180), (0L, 240) })
        {
            var reservation = Reserve(1, claimant: 0);
            _store.Correct(reservation, new BackendReservationReport(remaining, Limit, TimeSpan.FromSeconds(reset), null, null, TimeSpan.Zero, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow));
            // Each report its own flush: continuity is learned from two reports in turn.
            Thread.Sleep(1_000);
        }

        // The reports reach Redis in the background: the first claim is made once the budget flows.
        var flows = DateTime.UtcNow.AddSeconds(10);
        BackendReservation first = default;
        while (ClaimsQueued > 0 && !(first = Reserve(150_000, claimant: 1)).HoldsClaim)
        {
            if (DateTime.UtcNow > flows)
            {
                throw new InvalidOperationException($"The budget did not become a flow within 10 s: the first claim was {first.Status}, {first.RetryAfter}.");
            }

            Thread.Sleep(50);
        }

        for (var claimant = 2; claimant <= ClaimsQueued; claimant++)
        {
            var claim = Reserve(100, claimant);
            if (!claim.HoldsClaim)
            {
                throw new InvalidOperationException($"Claim {claimant} was not made ({claim.Status}, {claim.RetryAfter}): is the budget a flow?");
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
    public BackendReservation Refuse() => Reserve(100_000, claimant: 0);

    private BackendReservation Reserve(long cost, long claimant)
        => _store.ReserveAsync(Key, cost, 0, 0, claimant, DateTimeOffset.UtcNow, default).AsTask().GetAwaiter().GetResult();
}
