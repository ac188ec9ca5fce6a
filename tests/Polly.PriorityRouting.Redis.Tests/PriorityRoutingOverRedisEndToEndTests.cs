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
}
