using Polly.PriorityRouting.Redis.Tests.Support;
using Xunit.Abstractions;

namespace Polly.PriorityRouting.Redis.Tests;

/// <summary>
/// Redis as production runs it: the primary is killed and a replica promoted — by Sentinel, by hand, behind a name
/// that moves, or by a cluster replica. Each time no request fails, what one app replica learned in the window reaches
/// the other within 10 s of the promotion, and each app replica warns once and says "shared again" once, whether or
/// not the dead node returns.
/// </summary>
public sealed class RedisFailoverTests
{
    private readonly ITestOutputHelper _output;

    public RedisFailoverTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public async Task A_sentinel_failover_whose_dead_primary_never_returns_shares_the_window_and_ends_the_outage()
    {
        using var redis = new RedisReplicationGroup(withSentinels: true);
        await using var scenario = await FailoverScenario.StartAsync(redis.SentinelConfiguration);

        var measurement = await scenario.RunAsync(() => redis.Kill(0), () => redis.WaitForSentinelsToName(1));

        _output.WriteLine($"Sentinel, dead primary never returns: {measurement}");
        scenario.AssertOneCleanOutage(measurement);
    }

    [Fact]
    public async Task A_plain_string_naming_both_nodes_follows_a_promotion_made_by_hand()
    {
        using var redis = new RedisReplicationGroup(withSentinels: false);
        await using var scenario = await FailoverScenario.StartAsync(redis.PlainConfiguration);

        var measurement = await scenario.RunAsync(() => redis.Kill(0), () => redis.PromoteByHand(1));

        _output.WriteLine($"Plain two-node string, REPLICAOF NO ONE: {measurement}");
        scenario.AssertOneCleanOutage(measurement);
    }

    [Fact]
    public async Task The_old_primary_returning_as_a_replica_after_a_sentinel_failover_changes_nothing()
    {
        using var redis = new RedisReplicationGroup(withSentinels: true);
        await using var scenario = await FailoverScenario.StartAsync(redis.SentinelConfiguration);
        var measurement = await scenario.RunAsync(() => redis.Kill(0), () => redis.WaitForSentinelsToName(1));
        _output.WriteLine($"Sentinel, then the old primary returns: {measurement}");

        // The old primary comes back as it was configured, a primary of nothing, until Sentinel makes it a replica.
        redis.StartNode(0, replicaOf: null);
        redis.WaitForRole(0, "slave");
        var mark = new BackendStateKey("after-return@http://127.0.0.1:3");
        await scenario.A.MarkAsync(mark, TimeSpan.FromMinutes(2));
        await scenario.B.WaitForAsync(mark, timeout: TimeSpan.FromSeconds(10));
        scenario.AssertOneCleanOutage(measurement);
    }
}
