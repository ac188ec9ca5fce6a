using Polly.PriorityRouting.Redis.Tests.Support;
using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis.Tests;

/// <summary>
/// A replica whose subscription is lost while its commands still work (here: Redis refuses it the channel for a
/// moment, as a failover can leave a subscription on a node that no longer hears the primary) must not call its state
/// shared until its subscription hears again: it would miss every mark the other replicas publish afterwards.
/// </summary>
public sealed class RedisDeafSubscriptionTests : IClassFixture<RedisServerFixture>, IAsyncLifetime
{
    private const string Password = "deaf-subscription";
    private readonly RedisServerFixture _redis;
    private readonly string _user = $"pr-deaf-{Guid.NewGuid():N}";
    private readonly string _keyPrefix = $"test:{Guid.NewGuid():N}:";
    private ConnectionMultiplexer _admin = null!;

    public RedisDeafSubscriptionTests(RedisServerFixture redis) => _redis = redis;

    public async Task InitializeAsync()
    {
        _admin = await ConnectionMultiplexer.ConnectAsync(_redis.Configuration);
        await SetUserAsync("allchannels");
    }

    public async Task DisposeAsync()
    {
        await _admin.GetDatabase().ExecuteAsync("ACL", ["DELUSER", _user]);
        await _admin.DisposeAsync();
    }

    [Fact]
    public async Task A_replica_whose_subscription_was_lost_hears_the_marks_published_after_it_shares_again()
    {
        await using var publisher = await Replica.StartAsync(_redis.Configuration, _keyPrefix);
        await using var listener = await Replica.StartAsync($"{_redis.Configuration},user={_user},password={Password}", _keyPrefix);

        // Redis closes the listener's subscription when the channel is refused to it, and refuses it again when it
        // reconnects; its other commands go on, and it synchronizes meanwhile. Then the channel is allowed again.
        var restorations = listener.RedisStore.RestorationCount;
        await SetUserAsync("resetchannels");
        await Eventually.HoldsAsync(() => listener.RedisStore.RestorationCount > restorations, TimeSpan.FromSeconds(10), "the subscription reconnects");
        var passes = listener.RedisStore.SynchronizationPasses;
        await Eventually.HoldsAsync(
            () => !listener.RedisStore.IsSynchronizing && (!listener.RedisStore.IsUnshared || listener.RedisStore.SynchronizationPasses > passes),
            TimeSpan.FromSeconds(10),
            "the listener calls its state shared, or tried to");
        await SetUserAsync("allchannels");
        await Eventually.HoldsAsync(
            () => !listener.RedisStore.IsUnshared && !listener.RedisStore.IsSynchronizing, TimeSpan.FromSeconds(20), "the listener shares its state again");

        await publisher.MarkAsync("after-the-recovery", TimeSpan.FromMinutes(1));

        await listener.WaitForAsync("after-the-recovery", timeout: TimeSpan.FromSeconds(5));
    }

    private Task SetUserAsync(string channels)
        => _admin.GetDatabase().ExecuteAsync("ACL", ["SETUSER", _user, "on", ">" + Password, "~*", channels, "+@all"]);
}
