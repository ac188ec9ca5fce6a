using Polly.PriorityRouting.Redis.Tests.Support;

namespace Polly.PriorityRouting.Redis.Tests;

/// <summary>
/// Two hosts (two service providers, two multiplexers) in front of the same two Kestrel backends and one Redis.
/// </summary>
public sealed class PriorityRoutingOverRedisEndToEndTests : IClassFixture<RedisServerFixture>
{
    private readonly RedisServerFixture _redis;

    public PriorityRoutingOverRedisEndToEndTests(RedisServerFixture redis) => _redis = redis;

    [Fact]
    public async Task HostA_PaysTheOnly429_AndHostBNeverCallsTheThrottledBackend()
    {
        await using var hosts = await TwoHostsOverOneRedis.StartAsync(_redis, primaryThrottles: true);
        var (primary, secondary, hostA, hostB) = (hosts.Primary, hosts.Secondary, hosts.HostA, hosts.HostB);

        (await hostA.CreateClient().SendAsync(1)).Should().Be(0, "host A fails over to the secondary");
        (primary.Hits, secondary.Hits).Should().Be((1, 1));
        await hostB.WaitForAsync(hosts.PrimaryKey);

        (await hostB.CreateClient().SendAsync(5)).Should().Be(0);

        primary.Hits.Should().Be(1, "host B learned the throttling from host A through Redis");
        secondary.Hits.Should().Be(6);
    }

    [Fact]
    public async Task BackendsNamedAlikeAtDifferentAddresses_DoNotShareAThrottle_WhileTheSameNameAndAddressDoes()
    {
        var keyPrefix = $"test:{Guid.NewGuid():N}:";
        await using var throttling = await FakeBackendServer.StartAsync(throttles: true);
        await using var healthy = await FakeBackendServer.StartAsync(throttles: false);
        await using var fallback = await FakeBackendServer.StartAsync(throttles: false);

        // Two unrelated apps both call their first backend "primary", at different addresses; a third is configured
        // exactly as the first.
        await using var hostA = await RoutedHost.StartAsync(_redis.Configuration, keyPrefix, [("primary", throttling), ("fallback", fallback)]);
        await using var hostB = await RoutedHost.StartAsync(_redis.Configuration, keyPrefix, [("primary", healthy), ("fallback", fallback)]);
        await using var hostC = await RoutedHost.StartAsync(_redis.Configuration, keyPrefix, [("primary", throttling), ("fallback", fallback)]);

        (await hostA.CreateClient().SendAsync(1)).Should().Be(0);
        (throttling.Hits, fallback.Hits).Should().Be((1, 1));

        // Both other hosts hear of it, under host A's identity of the backend.
        var throttled = RoutedHost.StateKeyOf("primary", throttling);
        await hostB.WaitForAsync(throttled);
        await hostC.WaitForAsync(throttled);
        hostB.Store.TryGetUnavailability(RoutedHost.StateKeyOf("primary", healthy), out _).Should().BeFalse();
        hostB.Store.GetEntries(RoutedHost.StateKeyOf("primary", healthy).Backend).Should().BeEmpty();

        (await hostB.CreateClient().SendAsync(3)).Should().Be(0);
        (await hostC.CreateClient().SendAsync(3)).Should().Be(0);

        healthy.Hits.Should().Be(3, "host B's \"primary\" is another backend: it is not throttled");
        throttling.Hits.Should().Be(1, "host C's \"primary\" is host A's: it learned the throttle through Redis");
        fallback.Hits.Should().Be(4);
    }
}
