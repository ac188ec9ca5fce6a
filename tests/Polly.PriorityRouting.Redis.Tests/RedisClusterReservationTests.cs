using Polly.PriorityRouting.Redis.Tests.Support;

namespace Polly.PriorityRouting.Redis.Tests;

/// <summary>Shared reservations on the 3-node Redis Cluster: one script, one key, whatever its slot.</summary>
public sealed class RedisClusterReservationTests : IClassFixture<RedisClusterFixture>
{
    private readonly RedisClusterFixture _cluster;

    public RedisClusterReservationTests(RedisClusterFixture cluster) => _cluster = cluster;

    [Fact]
    public async Task Two_replicas_on_a_cluster_with_completions_in_flight_pay_no_backend_429()
    {
        await using var load = await RedisReservationTests.LoadAsync(_cluster.Configuration, reservations: true);

        load.Failed.Should().Be(0);
        load.Primary.Throttled.Should().Be(0);
        load.Primary.Admitted.Should().Be(10);
        load.Secondary.Admitted.Should().Be(21);
    }

    [Fact]
    public async Task Budgets_of_many_deployments_spread_over_the_shards_and_each_refuses_on_its_own()
    {
        await using var replica = await RedisReservationTests.StartReplicaAsync(_cluster.Configuration, RedisReservationTests.NewPrefix());
        var store = RedisReservationTests.Reserving(replica);
        var now = replica.Time.GetUtcNow();
        var keys = Enumerable.Range(0, 12).Select(i => new BackendStateKey("ptu@http://ptu.example", $"deployment-{i}")).ToArray();

        foreach (var key in keys)
        {
            var first = await store.ReserveAsync(key, 1_000, 0, 0, now, default);
            store.Correct(first, new BackendReservationReport(0, 1_000, TimeSpan.FromSeconds(30), null, null, TimeSpan.Zero, now, now));
        }

        await Eventually.HoldsAsync(() => replica.RedisStore.Reservations!.Flushed >= keys.Length, TimeSpan.FromSeconds(5), "every correction reaches its shard");
        foreach (var key in keys)
        {
            (await store.ReserveAsync(key, 1, 0, 0, now, default)).Status.Should().Be(BackendReservationStatus.Refused, $"{key} is spent");
        }

        replica.RedisStore.IsInOutage.Should().BeFalse();
    }

    [Fact]
    public async Task Claims_beside_budgets_on_every_shard_are_kept_and_redeemed()
    {
        // The claims hash and the claimant's record share their budget's hash tag: a script over all three is one slot.
        foreach (var deployment in Enumerable.Range(0, 4).Select(i => $"deployment-{i}"))
        {
            await using var setup = await RedisClaimTests.SpentAsync(_cluster.Configuration, grace: TimeSpan.FromMinutes(1), deployment: deployment);
            (await setup.ReserveAsync(6_000, claimant: 1)).HoldsClaim.Should().BeTrue(deployment);
            (await setup.ReserveAsync(6_000, claimant: 1)).HoldsClaim.Should().BeTrue($"{deployment}: back early");

            await setup.StepToClaimAsync(claimant: 1);

            (await setup.ReserveAsync(4_001, claimant: 0)).Status.Should().Be(BackendReservationStatus.Refused, deployment);
            (await setup.ReserveAsync(6_000, claimant: 1)).Status.Should().Be(BackendReservationStatus.Granted, $"{deployment}: redeemed");
            setup.Replica.RedisStore.IsInOutage.Should().BeFalse();
        }
    }

    [Fact]
    public async Task Claims_on_continuous_budgets_on_every_shard_are_kept_redeemed_and_given_back()
    {
        // A flow's claims (a sorted set) share their budget's hash tag too.
        foreach (var deployment in Enumerable.Range(0, 4).Select(i => $"deployment-{i}"))
        {
            await using var setup = await RedisClaimTests.FlowingAsync(_cluster.Configuration, deployment: deployment);
            var claim = await setup.ReserveAsync(5_500, claimant: 1);
            claim.HoldsClaim.Should().BeTrue(deployment);
            (await setup.ReserveAsync(300, claimant: 2)).HoldsClaim.Should().BeTrue(deployment);

            await setup.StepAsync(claim.RetryAfter + RedisClaimTests.Claiming.Due, 1, 2);

            (await setup.ReserveAsync(100, claimant: 0)).Status.Should().Be(BackendReservationStatus.Refused, deployment);
            (await setup.ReserveAsync(5_500, claimant: 1)).Status.Should().Be(BackendReservationStatus.Granted, $"{deployment}: redeemed");
            var flushed = setup.Replica.RedisStore.Reservations!.Flushed;
            setup.Store.ReleaseClaim(setup.Key, 2);
            await Eventually.HoldsAsync(() => setup.Replica.RedisStore.Reservations!.Flushed > flushed, TimeSpan.FromSeconds(5), $"{deployment}: the claim given back reaches Redis");
            (await setup.Database.SortedSetLengthAsync(setup.FlowClaimsKey)).Should().Be(0, deployment);
            setup.Replica.RedisStore.IsInOutage.Should().BeFalse();
        }
    }
}
