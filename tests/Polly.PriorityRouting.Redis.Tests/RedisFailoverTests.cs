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

    /// <summary>
    /// Set up as docs/distributed.md tells an app on Sentinel to: StackExchange.Redis blocks thread-pool threads while it
    /// reconfigures through Sentinel (an open upstream issue), and on a loaded 2-core machine the pool's slow growth
    /// turned that into a stalled command and a second brief outage in about 1 run of 40.
    /// </summary>
    static RedisFailoverTests()
    {
        ThreadPool.GetMinThreads(out var workers, out var completionPorts);
        ThreadPool.SetMinThreads(Math.Max(workers, 32), Math.Max(completionPorts, 32));
    }

    public RedisFailoverTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public async Task A_sentinel_failover_whose_dead_primary_never_returns_shares_the_window_and_ends_the_outage()
    {
        using var redis = new RedisReplicationGroup(withSentinels: true);
        await using var scenario = await FailoverScenario.StartAsync(redis.SentinelConfiguration);

        var measurement = await scenario.RunAsync(KillThePrimary(redis), SentinelsPromoteTheReplica(redis));

        _output.WriteLine($"Sentinel, dead primary never returns: {measurement}");
        scenario.AssertOneCleanOutage(measurement);

        // A replica started after the failover: Sentinel still lists nothing dead, but StackExchange.Redis may; it loads.
        await using var late = await Replica.StartAsync(redis.SentinelConfiguration, scenario.KeyPrefix);
        scenario.WindowMarks.Where(mark => !late.Store.TryGetUnavailability(mark, out var _)).Should().BeEmpty("the late replica loaded the window's marks");
        late.WarningCount.Should().Be(0);
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
        var measurement = await scenario.RunAsync(KillThePrimary(redis), SentinelsPromoteTheReplica(redis));
        _output.WriteLine($"Sentinel, then the old primary returns: {measurement}");
        scenario.AssertOneCleanOutage(measurement);

        // The old primary comes back as it was configured, a primary of nothing, until Sentinel makes it a replica some
        // seconds later: what A learns meanwhile must not be written to it (its data is replaced when it becomes one).
        var demotedBySentinel = false;
        var returning = await scenario.WhileAWritesAsync(() =>
        {
            redis.StartNode(0, replicaOf: null);
            demotedBySentinel = redis.WaitForDemotion(0, primary: 1);
        });

        _output.WriteLine($"Written on A while the old primary returned ({(demotedBySentinel ? "Sentinel" : "the test, after 20 s without Sentinel")} made it a replica): {returning}");
        returning.Marks.Should().BeGreaterThan(0);
        (returning.LostMarks, returning.LostPins).Should().Be((0, 0), "what A learned while the old primary returned reaches B");

        // The return is no outage: still one warning and one "shared again" over the whole test.
        scenario.AssertOneCleanOutage(measurement);
    }

    [Fact]
    public async Task A_managed_services_dns_name_that_moves_to_the_promoted_replica_is_followed()
    {
        using var redis = new RedisReplicationGroup(withSentinels: false);
        using var name = new TcpForwarder(redis.NodePorts[0]);
        await using var scenario = await FailoverScenario.StartAsync($"127.0.0.1:{name.Port},connectTimeout=2000");

        var measurement = await scenario.RunAsync(() => redis.Kill(0), () =>
        {
            redis.PromoteByHand(1);
            name.Repoint(redis.NodePorts[1]);
        });

        _output.WriteLine($"A DNS name that moves: {measurement}");
        scenario.AssertOneCleanOutage(measurement);
    }

    [Fact]
    public async Task A_cluster_replica_promoted_after_its_primary_is_killed_takes_over_its_shard()
    {
        using var cluster = new RedisClusterWithReplicas();
        await using var scenario = await FailoverScenario.StartAsync(cluster.Configuration);
        var (primary, replica) = cluster.APrimaryAndItsReplica();

        var measurement = await scenario.RunAsync(
            () =>
            {
                cluster.AllowFailover(replica);
                cluster.Kill(primary);
            },
            () => cluster.WaitForPromotion(replica));

        _output.WriteLine($"Cluster, a replica promoted: {measurement}");
        scenario.AssertOneCleanOutage(measurement);
    }

    /// <summary>Lets the sentinels make the one failover the test causes, and kills the primary.</summary>
    private static Action KillThePrimary(RedisReplicationGroup redis) => () =>
    {
        redis.AllowFailover();
        redis.Kill(0);
    };

    /// <summary>
    /// Waits until the sentinels name the replica, then keeps them from failing over again: a second failover on a
    /// loaded machine (to the old primary when it returns, empty) would lose what the test checks (see
    /// <see cref="RedisReplicationGroup.ForbidFailovers"/>).
    /// </summary>
    private static Action SentinelsPromoteTheReplica(RedisReplicationGroup redis) => () =>
    {
        redis.WaitForSentinelsToName(1);
        redis.ForbidFailovers();
    };

    [Fact]
    public async Task A_store_whose_only_endpoint_is_a_replica_warns_once_naming_it_and_stays_local()
    {
        using var redis = new RedisReplicationGroup(withSentinels: false);
        var replicaOnly = $"127.0.0.1:{redis.NodePorts[1]}";
        await using var replica = Replica.Create(replicaOnly + ",connectTimeout=2000", $"test:{Guid.NewGuid():N}:");

        await replica.MarkAsync("backend-x", TimeSpan.FromMinutes(1));

        replica.Store.TryGetUnavailability(new BackendStateKey("backend-x"), out _).Should().BeTrue("the store goes on locally");
        await Eventually.HoldsAsync(() => replica.WarningCount == 1, TimeSpan.FromSeconds(20), "the store warns");
        replica.StoreLogs.Single(record => record.Level == Microsoft.Extensions.Logging.LogLevel.Warning).Message
            .Should().Contain(replicaOnly).And.Contain("read-only replica").And.Contain("Sentinel");

        // Passes go on while it lasts (one every 2 s at most): still one warning.
        var passes = replica.RedisStore.SynchronizationPasses;
        await Eventually.HoldsAsync(() => replica.RedisStore.SynchronizationPasses > passes, TimeSpan.FromSeconds(10), "one more pass");
        replica.WarningCount.Should().Be(1);
        replica.RedisStore.IsInOutage.Should().BeTrue();
    }
}
