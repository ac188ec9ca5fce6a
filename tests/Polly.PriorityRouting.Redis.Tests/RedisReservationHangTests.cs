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

    // What would hold a caller without the reservation's own timeout: StackExchange.Redis's command timeout (its default,
    // which the fixture keeps; its RedisTimeoutException is a TimeoutException too, so the "late" log alone cannot tell
    // the two apart). A call answered sooner while Redis is stopped was released by the reservation's timeout. The bound
    // is 25 times that timeout: it tells the two mechanisms apart (checked: with the reservation's wait lengthened to
    // 30 s the test fails at 5.02 s), it does not time the library (a loaded 2-core CI machine once took 3 s for a cold
    // first request).
    private static readonly TimeSpan RedisCommandTimeout = TimeSpan.FromSeconds(5);

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
                waited.Elapsed.Should().BeLessThan(RedisCommandTimeout);
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

        // A warm client, as in an app that has served before: the backend's connection, the pipeline and the JIT are
        // not part of what a hung Redis costs.
        using (var warmUp = client.Send(CostingRequest()))
        {
            warmUp.StatusCode.Should().Be(HttpStatusCode.OK);
        }

        _redis.Pause();
        try
        {
            var waited = Stopwatch.StartNew();
            using var response = client.Send(CostingRequest());
            waited.Stop();

            response.StatusCode.Should().Be(HttpStatusCode.OK);
            backend.Admitted.Should().Be(2);
            Late(replica).Should().Be(1, "a timeout released the caller, logged once");
            waited.Elapsed.Should().BeLessThan(RedisCommandTimeout, "the caller was not held until Redis's own command timeout");
        }
        finally
        {
            _redis.Resume();
        }
    }

    [Fact]
    public async Task A_claim_redis_makes_after_the_reservation_timed_out_is_given_back()
    {
        // The budget is spent through a patient replica; the hurried one's reservation times out while Redis hangs, and
        // Redis claims the next refill for it when it resumes: nobody was told to come back for that claim.
        await using var setup = await RedisClaimTests.SpentAsync(_redis.Configuration);
        await using var hurried = await StartAsync(setup.Prefix);
        var store = (IBackendReservationStore)hurried.Store;
        var flushed = hurried.RedisStore.Reservations!.Flushed;
        BackendReservation late;
        _redis.Pause();
        try
        {
            late = await store.ReserveAsync(setup.Key, 6_000, 0, 0, 1, hurried.Time.GetUtcNow(), default);
        }
        finally
        {
            _redis.Resume();
        }

        late.Status.Should().Be(BackendReservationStatus.Unknown, "the replica's own view decided");
        await Eventually.HoldsAsync(() => hurried.RedisStore.Reservations!.Flushed > flushed, TimeSpan.FromSeconds(20), "the late claim is given back");
        (await setup.Database.KeyExistsAsync(RedisStoreLayout.ClaimantKeyOf(setup.BudgetKey, 1))).Should().BeFalse();
        (await setup.ClaimsAsync()).Should().BeEmpty();
        var newcomer = await setup.ReserveAsync(10_000, claimant: 2);
        newcomer.HoldsClaim.Should().BeTrue();
        newcomer.RetryAfter.Should().BeLessThanOrEqualTo(TimeSpan.FromSeconds(30), "the whole next refill is free again");
    }

    [Fact]
    public async Task A_claim_redis_makes_for_a_caller_that_gave_up_is_given_back()
    {
        await using var setup = await RedisClaimTests.SpentAsync(_redis.Configuration);
        var flushed = setup.Replica.RedisStore.Reservations!.Flushed;
        using var giveUp = new CancellationTokenSource();
        Task<BackendReservation> abandoned;
        _redis.Pause();
        try
        {
            abandoned = setup.Store.ReserveAsync(setup.Key, 6_000, 0, 0, 1, setup.Replica.Time.GetUtcNow(), giveUp.Token).AsTask();
            giveUp.Cancel();
            (await abandoned).Status.Should().Be(BackendReservationStatus.Unknown, "the caller gave up");
        }
        finally
        {
            _redis.Resume();
        }

        await Eventually.HoldsAsync(() => setup.Replica.RedisStore.Reservations!.Flushed > flushed, TimeSpan.FromSeconds(20), "the claim is given back");
        (await setup.Database.KeyExistsAsync(RedisStoreLayout.ClaimantKeyOf(setup.BudgetKey, 1))).Should().BeFalse();
        (await setup.ClaimsAsync()).Should().BeEmpty();
    }

    private static HttpRequestMessage CostingRequest()
    {
        var request = new HttpRequestMessage(HttpMethod.Post, RoutedHost.AnyPath) { Content = new StringContent("{}") };
        request.Headers.Add(TokenBudgetBackend.CostHeader, "1000");
        return request;
    }

    private static int Late(Replica replica) => replica.StoreLogs.Count(record => record.Id.Id == 7 && record.Level == LogLevel.Warning);

    private Task<Replica> StartAsync(params TokenBudgetBackend[] backends) => StartAsync(RedisReservationTests.NewPrefix(), backends);

    private Task<Replica> StartAsync(string prefix, params TokenBudgetBackend[] backends)
        => Replica.StartAsync(_redis.Configuration, prefix, DateTimeOffset.UtcNow, services =>
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
