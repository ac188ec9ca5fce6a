using Microsoft.Extensions.DependencyInjection;
using Polly.PriorityRouting.Redis.Tests.Support;
using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis.Tests;

/// <summary>
/// A deadline that comes from elsewhere — a peer's message, a key found at start, the script's answer — is held at most
/// <see cref="PriorityRoutingRedisStoreOptions.MaxUnavailability"/> (5 minutes by default), and Redis heals a key that
/// holds more.
/// </summary>
public sealed class RedisDeadlineClampTests : IClassFixture<RedisServerFixture>, IAsyncLifetime
{
    private static readonly TimeSpan OneYear = TimeSpan.FromDays(365);
    private static readonly TimeSpan DefaultMax = TimeSpan.FromMinutes(5);
    private readonly RedisServerFixture _redis;
    private readonly string _keyPrefix = $"test:{Guid.NewGuid():N}:";
    private ConnectionMultiplexer _inspector = null!;

    public RedisDeadlineClampTests(RedisServerFixture redis) => _redis = redis;

    private IDatabase Database => _inspector.GetDatabase();

    public async Task InitializeAsync() => _inspector = await ConnectionMultiplexer.ConnectAsync(_redis.Configuration);

    public async Task DisposeAsync() => await _inspector.DisposeAsync();

    [Fact]
    public async Task PeerMessageOfAYear_IsHeldForTheDefaultFiveMinutes()
    {
        await using var replica = await Replica.StartAsync(_redis.Configuration, _keyPrefix);
        var key = new BackendStateKey("far@https://far.example.net");

        await Database.PublishAsync(
            RedisChannel.Literal(_keyPrefix + "events"),
            new ThrottleMessage("peer", (long)OneYear.TotalMilliseconds, BackendUnavailableReason.Throttled, key).Format());

        var adopted = await replica.WaitForAsync(key);
        adopted.Should().Be(new BackendUnavailability(replica.Time.GetUtcNow() + DefaultMax, BackendUnavailableReason.Throttled));
        adopted.MarkedAt.Should().Be(replica.Time.GetUtcNow(), "a pipeline honours it for its own longest cooldown from when the replica learned it");
    }

    [Fact]
    public async Task KeyOfAYearFoundAtStart_IsLoadedAsTheConfiguredMaximum()
    {
        var key = new BackendStateKey("far@https://far.example.net", "gpt-4o");
        await Database.StringSetAsync(Layout.KeyOf(key), "1", OneYear);

        await using var replica = await Replica.StartAsync(_redis.Configuration, _keyPrefix, configureServices: services =>
            services.Configure<PriorityRoutingRedisStoreOptions>(options => options.MaxUnavailability = TimeSpan.FromMinutes(2)));

        replica.Store.TryGetUnavailability(key, out var loaded).Should().BeTrue();
        loaded.Should().Be(new BackendUnavailability(replica.Time.GetUtcNow() + TimeSpan.FromMinutes(2), BackendUnavailableReason.Throttled));
    }

    [Fact]
    public async Task KeyOfAYearInRedis_IsOverwrittenByTheNextMark_NotAdopted()
    {
        await using var replica = await Replica.StartAsync(_redis.Configuration, _keyPrefix);
        var key = new BackendStateKey("far@https://far.example.net");
        await Database.StringSetAsync(Layout.KeyOf(key), "1", OneYear);

        await replica.MarkAsync(key, TimeSpan.FromSeconds(30), BackendUnavailableReason.ServerError);

        // Redis heals: the year is replaced by the mark, and the writer keeps its own 30 s.
        await Eventually.HoldsAsync(async () => (long)await Database.ExecuteAsync("PTTL", Layout.KeyOf(key)) <= 30_000, TimeSpan.FromSeconds(5), "the key is overwritten");
        ((string?)await Database.StringGetAsync(Layout.KeyOf(key))).Should().Be("2");
        replica.Store.TryGetUnavailability(key, out var local).Should().BeTrue();
        local.Should().Be(new BackendUnavailability(replica.Time.GetUtcNow() + TimeSpan.FromSeconds(30), BackendUnavailableReason.ServerError));
    }

    [Fact]
    public async Task LaterDeadlineWithinTheMaximum_IsStillAdoptedFromTheScriptAnswer()
    {
        await using var replica = await Replica.StartAsync(_redis.Configuration, _keyPrefix);
        var key = new BackendStateKey("held@https://held.example.net");
        await Database.StringSetAsync(Layout.KeyOf(key), "1", TimeSpan.FromSeconds(200));

        await replica.MarkAsync(key, TimeSpan.FromSeconds(30));

        var adopted = await replica.WaitForAsync(key, u => u.Until > replica.Time.GetUtcNow() + TimeSpan.FromSeconds(30));
        adopted.Until.Should().BeAfter(replica.Time.GetUtcNow() + TimeSpan.FromSeconds(190)).And.BeOnOrBefore(replica.Time.GetUtcNow() + TimeSpan.FromSeconds(200));
        ((long)await Database.ExecuteAsync("PTTL", Layout.KeyOf(key))).Should().BeGreaterThan(190_000);
    }

    [Fact]
    public async Task OwnMarkLongerThanTheMaximum_IsWrittenToRedisAsTheMaximum()
    {
        await using var replica = await Replica.StartAsync(_redis.Configuration, _keyPrefix);
        var key = new BackendStateKey("long@https://long.example.net");

        await replica.MarkAsync(key, TimeSpan.FromHours(1));

        await Eventually.HoldsAsync(async () => await Database.KeyExistsAsync(Layout.KeyOf(key)), TimeSpan.FromSeconds(5), "the key is written");
        ((long)await Database.ExecuteAsync("PTTL", Layout.KeyOf(key))).Should().BeInRange(290_000, 300_000);
    }

    [Fact]
    public async Task DeadlineReloadedAfterAReconnect_KeepsWhenTheReplicaLearnedIt_SoPipelinesDoNotHoldTheBackendOutAgain()
    {
        await using var replica = await Replica.StartAsync(_redis.Configuration, _keyPrefix);
        var key = new BackendStateKey("peer-marked@https://peer.example.net");
        var learnedAt = replica.Time.GetUtcNow();

        // A peer with a longer MaxCooldown marks the backend for 200 s: its key, and its message.
        await Database.StringSetAsync(Layout.KeyOf(key), "1", TimeSpan.FromSeconds(200));
        await Database.PublishAsync(
            RedisChannel.Literal(_keyPrefix + "events"),
            new ThrottleMessage("peer", 200_000, BackendUnavailableReason.Throttled, key).Format());
        (await replica.WaitForAsync(key)).MarkedAt.Should().Be(learnedAt);

        // 10 s later on both clocks, the replica's connections drop and come back: it reloads what Redis holds.
        replica.Time.Advance(TimeSpan.FromSeconds(10));
        await Database.KeyExpireAsync(Layout.KeyOf(key), TimeSpan.FromSeconds(190));
        await ReconnectAsync(replica);

        // The same mark, loaded again: a pipeline whose longest cooldown is shorter than 200 s (held for it from when
        // the replica learned the mark) must not see the backend leave rotation again.
        replica.Store.TryGetUnavailability(key, out var reloaded).Should().BeTrue();
        reloaded.MarkedAt.Should().Be(learnedAt, "a reload is not a new mark");
        reloaded.Until.Should().Be(learnedAt + TimeSpan.FromSeconds(200));
    }

    [Fact]
    public async Task KeyOfAYearReloadedAfterAReconnect_IsNotLengthened()
    {
        var key = new BackendStateKey("far@https://far.example.net");
        await Database.StringSetAsync(Layout.KeyOf(key), "1", OneYear);
        await using var replica = await Replica.StartAsync(_redis.Configuration, _keyPrefix);
        var loadedAt = replica.Time.GetUtcNow();

        replica.Time.Advance(TimeSpan.FromSeconds(10));
        await ReconnectAsync(replica);

        replica.Store.TryGetUnavailability(key, out var reloaded).Should().BeTrue();
        reloaded.Until.Should().Be(loadedAt + DefaultMax, "held the maximum from when it was first loaded, not from each reload");
        reloaded.MarkedAt.Should().Be(loadedAt);
    }

    /// <summary>Drops every connection of the replica (Redis keeps its keys); returns when it has reloaded.</summary>
    private async Task ReconnectAsync(Replica replica)
    {
        var loads = replica.RedisStore.LoadCount;
        var admin = ConfigurationOptions.Parse(_redis.Configuration);
        admin.AllowAdmin = true;
        await using (var killer = await ConnectionMultiplexer.ConnectAsync(admin))
        {
            await killer.GetDatabase().ExecuteAsync("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes");
            await killer.GetDatabase().ExecuteAsync("CLIENT", "KILL", "TYPE", "pubsub", "SKIPME", "yes");
        }

        await Eventually.HoldsAsync(
            () => replica.RedisStore.LoadCount > loads && !replica.RedisStore.IsInOutage && !replica.RedisStore.IsSynchronizing,
            TimeSpan.FromSeconds(15),
            "the replica reconnects and reloads");
    }

    private RedisStoreLayout Layout => new(_keyPrefix, _keyPrefix + "events");
}
