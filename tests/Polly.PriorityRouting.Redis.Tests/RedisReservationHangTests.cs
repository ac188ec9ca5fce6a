using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Polly.PriorityRouting.Redis.Tests.Support;

namespace Polly.PriorityRouting.Redis.Tests;

/// <summary>
/// A Redis that hangs (SIGSTOP) never holds an attempt longer than <see cref="PriorityRoutingRedisStoreOptions.ReservationTimeout"/>:
/// the replica's own view admits it, the slowness is logged once, a run of late answers declares the outage (after which
/// no attempt waits at all), and a synchronous caller is blocked no longer than an asynchronous one.
/// </summary>
public sealed class RedisReservationHangTests : IClassFixture<RedisServerFixture>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(3);

    private readonly RedisServerFixture _redis;

    public RedisReservationHangTests(RedisServerFixture redis) => _redis = redis;

    [Fact]
    public async Task While_redis_hangs_a_reservation_waits_at_most_its_timeout_the_slowness_is_logged_once_and_a_run_of_them_is_an_outage()
    {
        await using var replica = await StartAsync();
        var store = (IBackendReservationStore)replica.Store;
        var key = new BackendStateKey("ptu@http://ptu.example");
        _redis.Pause();
        try
        {
            for (var i = 0; i < RedisReservations.ConsecutiveTimeoutsForOutage; i++)
            {
                var waited = Stopwatch.StartNew();
                var reservation = await store.ReserveAsync(key, 100, 0, 0, replica.Time.GetUtcNow(), default);

                reservation.Status.Should().Be(BackendReservationStatus.Unknown, "the replica's own view decides");
                waited.Elapsed.Should().BeLessThan(Generous);
            }

            replica.RedisStore.IsInOutage.Should().BeTrue($"{RedisReservations.ConsecutiveTimeoutsForOutage} late answers in a row are a hung Redis");
            var duringOutage = store.ReserveAsync(key, 100, 0, 0, replica.Time.GetUtcNow(), default);
            duringOutage.IsCompleted.Should().BeTrue("during an outage no attempt waits for Redis");
            Late(replica).Should().Be(1, "the slowness is logged once, not per attempt");
        }
        finally
        {
            _redis.Resume();
        }

        await Eventually.HoldsAsync(() => !replica.RedisStore.IsInOutage, TimeSpan.FromSeconds(20), "the store shares again");
        (await store.ReserveAsync(key, 100, 0, 0, replica.Time.GetUtcNow(), default)).IsCounted.Should().BeTrue();
    }

    [Fact]
    public async Task A_synchronous_caller_is_held_no_longer_than_the_timeout_while_redis_hangs()
    {
        await using var backend = await TokenBudgetBackend.StartAsync(limit: null, TimeSpan.FromMinutes(1), TimeSpan.Zero);
        await using var replica = await StartAsync(backend);
        var client = replica.CreateClient();
        _redis.Pause();
        try
        {
            var waited = Stopwatch.StartNew();
            using var request = new HttpRequestMessage(HttpMethod.Post, RoutedHost.AnyPath) { Content = new StringContent("{}") };
            request.Headers.Add(TokenBudgetBackend.CostHeader, "1000");

            using var response = client.Send(request);

            response.StatusCode.Should().Be(HttpStatusCode.OK);
            waited.Elapsed.Should().BeLessThan(Generous);
            backend.Admitted.Should().Be(1);
        }
        finally
        {
            _redis.Resume();
        }
    }

    private static int Late(Replica replica) => replica.StoreLogs.Count(record => record.Id.Id == 7 && record.Level == LogLevel.Warning);

    private Task<Replica> StartAsync(params TokenBudgetBackend[] backends)
        => Replica.StartAsync(_redis.Configuration, RedisReservationTests.NewPrefix(), DateTimeOffset.UtcNow, services =>
        {
            services.Configure<PriorityRoutingRedisStoreOptions>(options =>
            {
                options.Reservations = true;
                options.ReservationTimeout = Timeout;
            });
            services.AddHttpClient(RoutedHost.ClientName)
                .AddResilienceHandler("priority", (builder, context) => builder.AddPriorityRouting(new PriorityRoutingStrategyOptions
                {
                    StateStore = context.ServiceProvider.GetRequiredService<IBackendStateStore>(),
                    Backends = [.. backends.Select((backend, index) => new PriorityBackend { Name = $"backend-{index + 1}", BaseAddress = backend.BaseAddress, Priority = index + 1 })],
                }));
        });
}
