using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Polly.PriorityRouting.Redis.Tests.Support;

namespace Polly.PriorityRouting.Redis.Tests;

/// <summary>
/// Redis goes away in the middle of a run and comes back on the same port: requests never notice, each replica warns
/// once, and what was learned meanwhile is shared when Redis returns.
/// </summary>
public sealed class RedisOutageTests : IClassFixture<RedisServerFixture>
{
    private static readonly TimeSpan OutageNoticed = TimeSpan.FromSeconds(5);

    // What a creation that waited for Redis would take: the first-load wait (2 s). The bound tells the two apart; it does
    // not time the creation, which a cold, loaded 2-core CI machine (JIT, parallel test classes) can slow to a second.
    private static readonly TimeSpan CreationWaitingForRedis = PriorityRoutingRedisStoreOptions.DefaultFirstLoadTimeout;

    // StackExchange.Redis retries the connection with a back-off: a restart can take a few seconds to be seen.
    private static readonly TimeSpan ReconnectionNoticed = TimeSpan.FromSeconds(15);

    private readonly RedisServerFixture _redis;
    private readonly string _keyPrefix = $"test:{Guid.NewGuid():N}:";

    public RedisOutageTests(RedisServerFixture redis) => _redis = redis;

    [Fact]
    public async Task RedisKilledMidRun_NoRequestFails_OneWarningPerReplica_AndSharingResumesWithWhatWasLearned()
    {
        await using var hosts = await TwoHostsOverOneRedis.StartAsync(_redis, primaryThrottles: false);
        var (primary, secondary, hostA, hostB) = (hosts.Primary, hosts.Secondary, hosts.HostA, hosts.HostB);
        var clientA = hostA.CreateClient();
        var clientB = hostB.CreateClient();
        (await clientA.SendAsync(3)).Should().Be(0);
        (primary.Hits, secondary.Hits).Should().Be((3, 0));

        _redis.Kill();
        await Eventually.HoldsAsync(() => hostA.RedisStore.IsInOutage && hostB.RedisStore.IsInOutage, OutageNoticed, "both replicas notice the outage");

        // During the outage the primary starts throttling: host A learns it, locally only.
        primary.Throttles = true;
        var slowest = TimeSpan.Zero;
        for (var i = 0; i < 20; i++)
        {
            var sent = Stopwatch.StartNew();
            (await clientA.SendAsync(1)).Should().Be(0, "a request never fails because of the store");
            slowest = sent.Elapsed > slowest ? sent.Elapsed : slowest;
        }

        (primary.Hits, secondary.Hits).Should().Be((4, 20), "host A paid one 429, then skipped the primary on local state");
        slowest.Should().BeLessThan(TimeSpan.FromSeconds(1), "no request waits on an unreachable Redis");
        hostA.WarningCount.Should().Be(1);
        hostB.WarningCount.Should().Be(1);

        _redis.Start();
        var learnedByB = await hostB.WaitForAsync(hosts.PrimaryKey, timeout: ReconnectionNoticed);

        learnedByB.Reason.Should().Be(BackendUnavailableReason.Throttled);
        (await clientB.SendAsync(5)).Should().Be(0);
        (primary.Hits, secondary.Hits).Should().Be((4, 25), "host B learned, after the outage, what host A learned during it");
        hostA.WarningCount.Should().Be(1, "one warning per outage, not per request nor per reconnection attempt");
        hostB.WarningCount.Should().Be(1);
        await Eventually.HoldsAsync(() => !hostA.RedisStore.IsInOutage, ReconnectionNoticed, "host A ends its outage");
        hostA.StoreLogs.Should().ContainSingle(record => record.Level == LogLevel.Information)
            .Which.Message.Should().Contain("1 deadlines learned meanwhile published");

        // And sharing goes on in the other direction too.
        await hostB.MarkAsync(hosts.SecondaryKey, TimeSpan.FromSeconds(30));
        (await hostA.WaitForAsync(hosts.SecondaryKey)).Reason.Should().Be(BackendUnavailableReason.Throttled);
    }

    [Fact]
    public async Task RedisUnreachableAtStart_DoesNotBlockCreation_AndTheStoreWorksLocallyWithOneWarning()
    {
        var unusedPort = _redis.Port == 1 ? 2 : 1;
        var created = Stopwatch.StartNew();
        await using var replica = Replica.Create($"127.0.0.1:{unusedPort},connectTimeout=1000", _keyPrefix);
        created.Elapsed.Should().BeLessThan(CreationWaitingForRedis);

        for (var i = 0; i < 10; i++)
        {
            var marking = replica.MarkAsync("backend-x", TimeSpan.FromSeconds(10 + i));
            marking.IsCompletedSuccessfully.Should().BeTrue();
        }

        replica.Store.TryGetUnavailability(new BackendStateKey("backend-x"), out var local).Should().BeTrue();
        local.Until.Should().Be(replica.Time.GetUtcNow() + TimeSpan.FromSeconds(19));
        await Eventually.HoldsAsync(() => replica.WarningCount == 1, TimeSpan.FromSeconds(5), "the outage is reported");
        await replica.MarkAsync("backend-y", TimeSpan.FromSeconds(10));
        await Task.Delay(200);
        replica.WarningCount.Should().Be(1);
    }

    [Fact]
    public async Task RedisDownAtStart_StoreSynchronizesOnceRedisIsUp_AndPublishesWhatItLearnedMeanwhile()
    {
        await using var peer = await Replica.StartAsync(_redis.Configuration, _keyPrefix);
        _redis.Kill();
        try
        {
            var created = Stopwatch.StartNew();
            await using var late = Replica.Create(_redis.Configuration, _keyPrefix);
            created.Elapsed.Should().BeLessThan(CreationWaitingForRedis, "creating the store never waits for Redis");
            await late.MarkAsync("backend-x", TimeSpan.FromSeconds(30));
            await Eventually.HoldsAsync(() => late.WarningCount == 1, OutageNoticed, "the late replica reports the outage");

            _redis.Start();
            await late.RedisStore.FirstSynchronization.WaitAsync(ReconnectionNoticed);

            // Learned by push, or by the peer's own reload if its subscription came back after the publication.
            var learned = await peer.WaitForAsync("backend-x", timeout: ReconnectionNoticed);
            learned.Until.Should().BeAfter(peer.Time.GetUtcNow() + TimeSpan.FromSeconds(20)).And.BeOnOrBefore(peer.Time.GetUtcNow() + TimeSpan.FromSeconds(30));
            late.WarningCount.Should().Be(1);
            peer.WarningCount.Should().Be(1);
        }
        finally
        {
            EnsureRedisRuns();
        }
    }

    [Fact]
    public async Task RedisRestarted_ReloadsTheStateOnce_HoweverManyConnectionsAreRestored()
    {
        await using var replica = await Replica.StartAsync(_redis.Configuration, _keyPrefix);
        _redis.Kill();
        try
        {
            await Eventually.HoldsAsync(() => replica.RedisStore.IsInOutage, OutageNoticed, "the replica notices the outage");
            var loads = replica.RedisStore.LoadCount;

            _redis.Start();

            // The interactive and the subscription connection are each restored, each with its own event.
            await Eventually.HoldsAsync(
                () => replica.RedisStore.RestorationCount >= 2 && !replica.RedisStore.IsInOutage && !replica.RedisStore.IsSynchronizing,
                ReconnectionNoticed,
                "both connections are restored and the replica is synchronized");
            (replica.RedisStore.LoadCount - loads).Should().Be(1, "one reconnection is one load, not one per connection");
            replica.WarningCount.Should().Be(1);
        }
        finally
        {
            EnsureRedisRuns();
        }
    }

    private void EnsureRedisRuns()
    {
        if (!_redis.IsRunning)
        {
            _redis.Start();
        }
    }
}
