using System.Diagnostics;
using System.Net;
using Polly.PriorityRouting.Redis.Tests.Support;
using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis.Tests;

/// <summary>
/// A replica started while another has already marked a backend: the host's start loads the shared state, so the fresh
/// replica's very first request skips the backend instead of paying its own 429; with Redis down it starts at once.
/// </summary>
public sealed class FreshReplicaTests : IClassFixture<RedisServerFixture>
{
    private readonly RedisServerFixture _redis;
    private readonly string _keyPrefix = $"test:{Guid.NewGuid():N}:";

    public FreshReplicaTests(RedisServerFixture redis) => _redis = redis;

    [Fact]
    public async Task A_fresh_replicas_first_request_skips_the_backend_another_replica_marked()
    {
        await using var primary = await FakeBackendServer.StartAsync(throttles: true);
        await using var secondary = await FakeBackendServer.StartAsync(throttles: false);
        await using var marking = await RoutedHost.StartAsync(_redis.Configuration, _keyPrefix, primary, secondary);
        (await marking.CreateClient().SendAsync(1)).Should().Be(0);
        (primary.Hits, secondary.Hits).Should().Be((1, 1), "the first replica paid the 429 and marked the primary");
        await using var inspector = await ConnectionMultiplexer.ConnectAsync(_redis.Configuration);
        var server = inspector.GetServer(inspector.GetEndPoints()[0]);
        await Eventually.HoldsAsync(() => server.Keys(pattern: _keyPrefix + "*").Any(), TimeSpan.FromSeconds(5), "the mark is stored in Redis");

        for (var fresh = 0; fresh < 5; fresh++)
        {
            await using var replica = await FreshHost.StartAsync(_redis.Configuration, _keyPrefix, [primary, secondary]);

            (await replica.Client.SendAsync(1)).Should().Be(0);

            primary.Hits.Should().Be(1, $"fresh replica {fresh + 1} loaded the mark before its first request");
            replica.StoreWarnings.Should().Be(0);
        }

        secondary.Hits.Should().Be(6);
    }

    [Fact]
    public async Task With_redis_unreachable_a_fresh_replica_starts_and_serves_its_first_request_at_once()
    {
        await using var backend = await FakeBackendServer.StartAsync(throttles: false);
        var unusedPort = _redis.Port == 1 ? 2 : 1;
        var started = Stopwatch.StartNew();

        // A bound far longer than anything a loaded machine adds: a start that waited for it, instead of ending on the
        // refused connection, shows as 30 s, never as a few seconds of scheduling delay.
        var bound = TimeSpan.FromSeconds(30);
        await using var replica = await FreshHost.StartAsync(
            $"127.0.0.1:{unusedPort},connectTimeout=1000", _keyPrefix, [backend], options => options.FirstLoadTimeout = bound);
        using var answer = await replica.Client.GetAsync(RoutedHost.AnyPath);

        answer.StatusCode.Should().Be(HttpStatusCode.OK);
        started.Elapsed.Should().BeLessThan(bound / 2, "an unreachable Redis ends the wait at once, not at the first-load bound");
        backend.Hits.Should().Be(1);
        replica.StoreWarnings.Should().Be(1);
    }
}
