using Polly.PriorityRouting.Redis.Tests.Support;
using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis.Tests;

/// <summary>
/// The ACL documented in docs/distributed.md is enough for the store, and a wrong password fails open.
/// </summary>
public sealed class RedisAccessControlTests : IClassFixture<RedisServerFixture>, IAsyncLifetime
{
    private const string Password = "correct-horse-battery";
    private readonly RedisServerFixture _redis;
    private readonly string _user = $"pr-{Guid.NewGuid():N}";
    private ConnectionMultiplexer _admin = null!;

    public RedisAccessControlTests(RedisServerFixture redis) => _redis = redis;

    public async Task InitializeAsync()
    {
        _admin = await ConnectionMultiplexer.ConnectAsync(_redis.Configuration);
        await _admin.GetDatabase().ExecuteAsync("ACL", [
            "SETUSER", _user, "on", ">" + Password, "~polly:priority-routing:*", "&polly:priority-routing:events",
            "+eval", "+evalsha", "+script|load", "+scan", "+pttl", "+get", "+set", "+publish", "+subscribe", "+unsubscribe",
            "+hello", "+auth", "+client|setname", "+client|id", "+info", "+echo", "+ping", "+cluster|nodes", "+cluster|slots", "+quit"]);
    }

    public async Task DisposeAsync()
    {
        await _admin.GetDatabase().ExecuteAsync("ACL", ["DELUSER", _user]);
        await _admin.DisposeAsync();
    }

    [Fact]
    public async Task RestrictedUserWithTheDocumentedAcl_SharesStateWithTheDefaultPrefix()
    {
        var configuration = $"127.0.0.1:{_redis.Port},connectTimeout=2000,user={_user},password={Password},tiebreaker=";
        await using var replicaA = await Replica.StartAsync(configuration, PriorityRoutingRedisStoreOptions.DefaultKeyPrefix);
        await using var replicaB = await Replica.StartAsync(configuration, PriorityRoutingRedisStoreOptions.DefaultKeyPrefix);

        await replicaA.MarkAsync("acl-backend", TimeSpan.FromSeconds(30));

        (await replicaB.WaitForAsync("acl-backend")).Until.Should().Be(replicaB.Time.GetUtcNow() + TimeSpan.FromSeconds(30));
        ((string?)await _admin.GetDatabase().StringGetAsync("polly:priority-routing:11:acl-backend")).Should().Be("1");
        replicaA.WarningCount.Should().Be(0);
        replicaB.WarningCount.Should().Be(0);
    }

    [Fact]
    public async Task WrongPassword_FailsOpen_WithOneWarning()
    {
        // Redis lets a failed login go on as the default user while that user needs no password: close that door.
        await _admin.GetDatabase().ExecuteAsync("ACL", ["SETUSER", "default", "resetpass", ">admin-only"]);
        try
        {
            await AssertWrongPasswordFailsOpenAsync();
        }
        finally
        {
            await _admin.GetDatabase().ExecuteAsync("ACL", ["SETUSER", "default", "nopass"]);
        }
    }

    private async Task AssertWrongPasswordFailsOpenAsync()
    {
        var configuration = $"127.0.0.1:{_redis.Port},connectTimeout=1000,user={_user},password=wrong,tiebreaker=";
        await using var replica = Replica.Create(configuration, PriorityRoutingRedisStoreOptions.DefaultKeyPrefix);

        for (var i = 0; i < 5; i++)
        {
            await replica.MarkAsync("wrong-password-backend", TimeSpan.FromSeconds(30));
        }

        replica.Store.TryGetUnavailability(new BackendStateKey("wrong-password-backend"), out var local).Should().BeTrue();
        local.Until.Should().Be(replica.Time.GetUtcNow() + TimeSpan.FromSeconds(30));
        await Eventually.HoldsAsync(() => replica.WarningCount == 1, TimeSpan.FromSeconds(5), "the failure is reported");
        await Task.Delay(1500);
        replica.WarningCount.Should().Be(1);
        (await _admin.GetDatabase().KeyExistsAsync("polly:priority-routing:22:wrong-password-backend")).Should().BeFalse();
    }
}
