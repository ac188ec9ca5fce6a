using System.Net;
using Polly.PriorityRouting.Redis.Tests.Support;

namespace Polly.PriorityRouting.Redis.Tests;

/// <summary>
/// Two hosts (two service providers, two multiplexers) in front of the same two Kestrel backends and one Redis.
/// </summary>
public sealed class PriorityRoutingOverRedisEndToEndTests : IClassFixture<RedisServerFixture>
{
    private const string AnyPath = "http://placeholder/v1/chat/completions";
    private readonly RedisServerFixture _redis;
    private readonly string _keyPrefix = $"test:{Guid.NewGuid():N}:";

    public PriorityRoutingOverRedisEndToEndTests(RedisServerFixture redis) => _redis = redis;

    [Fact]
    public async Task HostA_PaysTheOnly429_AndHostBNeverCallsTheThrottledBackend()
    {
        await using var primary = await FakeBackendServer.StartAsync(throttles: true);
        await using var secondary = await FakeBackendServer.StartAsync(throttles: false);
        await using var hostA = await RoutedHost.StartAsync(_redis.Configuration, _keyPrefix, primary, secondary);
        await using var hostB = await RoutedHost.StartAsync(_redis.Configuration, _keyPrefix, primary, secondary);

        using var answerA = await hostA.CreateClient().GetAsync(AnyPath);

        answerA.StatusCode.Should().Be(HttpStatusCode.OK, "host A fails over to the secondary");
        (primary.Hits, secondary.Hits).Should().Be((1, 1));
        await hostB.WaitForAsync("backend-1");

        var clientB = hostB.CreateClient();
        for (var i = 0; i < 5; i++)
        {
            using var answerB = await clientB.GetAsync(AnyPath);
            answerB.StatusCode.Should().Be(HttpStatusCode.OK);
        }

        primary.Hits.Should().Be(1, "host B learned the throttling from host A through Redis");
        secondary.Hits.Should().Be(6);
    }
}
