using System.Net;
using Microsoft.Extensions.Logging;
using Polly.PriorityRouting.Redis.Tests.Support;
using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis.Tests;

/// <summary>
/// The store over a real three-node Redis Cluster: keys of different backends land on different shards, marks are
/// pushed and loaded from every primary, and one node's outage is one outage, ended once every shard is loaded.
/// </summary>
public sealed class RedisClusterTests : IClassFixture<RedisClusterFixture>, IAsyncLifetime
{
    private static readonly TimeSpan OutageNoticed = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan ReconnectionNoticed = TimeSpan.FromSeconds(20);
    private readonly RedisClusterFixture _cluster;
    private readonly string _keyPrefix = $"test:{Guid.NewGuid():N}:";
    private ConnectionMultiplexer _inspector = null!;

    public RedisClusterTests(RedisClusterFixture cluster) => _cluster = cluster;

    public async Task InitializeAsync() => _inspector = await ConnectionMultiplexer.ConnectAsync(_cluster.Configuration);

    public async Task DisposeAsync() => await _inspector.DisposeAsync();

    [Fact]
    public async Task MarksOnEveryShard_ArePushed_AndLoadedFromEveryPrimaryByAReplicaStartedLater()
    {
        var keys = OneKeyPerNode("shard");
        await using var replicaA = await Replica.StartAsync(_cluster.Configuration, _keyPrefix);
        await using var replicaB = await Replica.StartAsync(_cluster.Configuration, _keyPrefix);

        foreach (var key in keys)
        {
            await replicaA.MarkAsync(key, TimeSpan.FromSeconds(30));
        }

        foreach (var key in keys)
        {
            (await replicaB.WaitForAsync(key)).Until.Should().Be(replicaB.Time.GetUtcNow() + TimeSpan.FromSeconds(30));
        }

        await Eventually.HoldsAsync(
            async () => (await Task.WhenAll(keys.Select(key => _inspector.GetDatabase().KeyExistsAsync(Layout.KeyOf(key))))).All(exists => exists),
            TimeSpan.FromSeconds(5),
            "every key is written to its shard");

        await using var late = await Replica.StartAsync(_cluster.Configuration, _keyPrefix);
        foreach (var key in keys)
        {
            late.Store.TryGetUnavailability(key, out var loaded).Should().BeTrue($"{key} is loaded from its shard");
            loaded.Until.Should().BeOnOrBefore(late.Time.GetUtcNow() + TimeSpan.FromSeconds(30)).And.BeAfter(late.Time.GetUtcNow() + TimeSpan.FromSeconds(20));
        }

        replicaA.WarningCount.Should().Be(0);
        late.WarningCount.Should().Be(0);
    }

    [Fact]
    public async Task OneNodeDown_IsOneOutage_SharedAgainOnlyOnceEveryPrimaryIsLoaded()
    {
        await using var replicaA = await Replica.StartAsync(_cluster.Configuration, _keyPrefix);
        await using var replicaB = await Replica.StartAsync(_cluster.Configuration, _keyPrefix);

        // The node to kill serves neither replica's subscription, so that pushes on the live shards go on.
        var subscribed = new[] { replicaA, replicaB }
            .Select(replica => NodeOf(replica.RedisStore.Multiplexer!.GetSubscriber().SubscribedEndpoint(Layout.Channel)!))
            .ToHashSet();
        var victim = Enumerable.Range(0, _cluster.Ports.Count).First(node => !subscribed.Contains(node));
        var keys = OneKeyPerNode("outage");
        var onDeadShard = keys[victim];
        var onLiveShard = keys[(victim + 1) % keys.Count];

        _cluster.Kill(victim);
        try
        {
            await Eventually.HoldsAsync(() => replicaA.RedisStore.IsInOutage && replicaB.RedisStore.IsInOutage, OutageNoticed, "both replicas notice the outage");

            // A write to a live shard goes through and is pushed; the dead shard's state is still not loaded.
            var passes = replicaA.RedisStore.SynchronizationPasses;
            await replicaA.MarkAsync(onLiveShard, TimeSpan.FromSeconds(30));
            await replicaA.MarkAsync(onDeadShard, TimeSpan.FromSeconds(30));
            (await replicaB.WaitForAsync(onLiveShard)).Until.Should().Be(replicaB.Time.GetUtcNow() + TimeSpan.FromSeconds(30));
            await Eventually.HoldsAsync(
                () => replicaA.RedisStore.SynchronizationPasses > passes && !replicaA.RedisStore.IsSynchronizing,
                OutageNoticed,
                "the successful write makes replica A try to synchronize");

            replicaA.RedisStore.IsInOutage.Should().BeTrue("the dead shard's state was never loaded");
            replicaA.StoreLogs.Should().NotContain(record => record.Level == LogLevel.Information);
            replicaA.WarningCount.Should().Be(1);
            replicaB.WarningCount.Should().Be(1);
            replicaB.Store.TryGetUnavailability(onDeadShard, out _).Should().BeFalse("its write failed: it waits for the shard");
        }
        finally
        {
            _cluster.Start(victim);
            _cluster.WaitUntilClusterIsOk();
        }

        // The outage flag is cleared before "shared again" is logged (outside the connection's lock): wait for both.
        static bool Ended(Replica replica) => !replica.RedisStore.IsInOutage &&
            replica.StoreLogs.Count(record => record.Level >= LogLevel.Information) is var logged && logged >= 2 && logged % 2 == 0;
        await Eventually.HoldsAsync(() => Ended(replicaA) && Ended(replicaB), ReconnectionNoticed, "both replicas end their outage and say so");
        (await replicaB.WaitForAsync(onDeadShard, timeout: ReconnectionNoticed)).Until.Should().BeAfter(replicaB.Time.GetUtcNow() + TimeSpan.FromSeconds(20));
        // While the node was down each replica warned once (asserted above). A restarted cluster node can fail a
        // reconnection once more while the cluster re-forms — a real, second outage on a loaded machine — so what must
        // hold is the pairing: one warning per outage, one "shared again" per ended outage, in that order.
        foreach (var replica in new[] { replicaA, replicaB })
        {
            var levels = replica.StoreLogs.Where(record => record.Level >= LogLevel.Information).Select(record => record.Level).ToArray();
            levels.Should().NotBeEmpty();
            for (var i = 0; i < levels.Length; i++)
            {
                levels[i].Should().Be(i % 2 == 0 ? LogLevel.Warning : LogLevel.Information, "outages and their ends alternate");
            }

            levels.Length.Should().BeGreaterThanOrEqualTo(2).And.Match(n => n % 2 == 0, "every outage ended");
        }

        // Replica A's mark for the dead shard reached Redis (B read it back above) — published by the recovery that ended
        // the outage, or by an earlier pass that failed before it could: which pass counts it depends on timing.
        replicaA.StoreLogs.First(record => record.Level == LogLevel.Information)
            .Message.Should().StartWith("Redis is reachable again: throttle state is shared again (");
    }

    [Fact]
    public async Task EveryNodeRestarted_ReloadsTheStateOnce_NotOncePerRestoredConnection()
    {
        await using var replica = await Replica.StartAsync(_cluster.Configuration, _keyPrefix);
        for (var node = 0; node < _cluster.Ports.Count; node++)
        {
            _cluster.Kill(node);
        }

        int loads, restorations;
        try
        {
            await Eventually.HoldsAsync(() => replica.RedisStore.IsInOutage, OutageNoticed, "the replica notices the outage");
            loads = replica.RedisStore.LoadCount;
            restorations = replica.RedisStore.RestorationCount;
        }
        finally
        {
            for (var node = 0; node < _cluster.Ports.Count; node++)
            {
                _cluster.Start(node);
            }

            _cluster.WaitUntilClusterIsOk();
        }

        // One restoration event per node at least (its interactive connection), each a reason to synchronize.
        await Eventually.HoldsAsync(
            () => replica.RedisStore.RestorationCount - restorations >= _cluster.Ports.Count && !replica.RedisStore.IsInOutage && !replica.RedisStore.IsSynchronizing,
            ReconnectionNoticed,
            $"every node's connection is restored and the replica is synchronized ({replica.RedisStore.RestorationCount - restorations} restorations, outage {replica.RedisStore.IsInOutage})");
        (replica.RedisStore.LoadCount - loads).Should().Be(1, "one recovery is one load of every primary, not one per restored connection");
        replica.StoreLogs.Should().ContainSingle(record => record.Level == LogLevel.Information);
        replica.WarningCount.Should().Be(1);
    }

    private RedisStoreLayout Layout => new(_keyPrefix, _keyPrefix + "events");

    /// <summary>
    /// Returns, for each node in order of the fixture's ports, a backend key whose Redis key lives on that node.
    /// </summary>
    private List<BackendStateKey> OneKeyPerNode(string name)
    {
        var found = new BackendStateKey?[_cluster.Ports.Count];
        for (var i = 0; found.Any(key => key is null); i++)
        {
            var key = new BackendStateKey($"{name}-{i}@https://backend.example.net", "deployment");
            var node = NodeOf(_inspector.GetServer(_inspector.GetEndPoints()[0]).ClusterConfiguration!.GetBySlot(Layout.KeyOf(key))!.EndPoint!);
            found[node] ??= key;
        }

        return [.. found.Select(key => key!.Value)];
    }

    private int NodeOf(EndPoint endPoint)
    {
        var port = endPoint switch
        {
            IPEndPoint ip => ip.Port,
            DnsEndPoint dns => dns.Port,
            _ => throw new InvalidOperationException($"Unexpected end point {endPoint}."),
        };
        return _cluster.Ports.ToList().IndexOf(port);
    }
}
