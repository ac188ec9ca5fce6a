using Microsoft.Extensions.DependencyInjection;
using Polly.PriorityRouting.Redis.Tests.Support;
using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis.Tests;

public sealed class RedisBackendStateStoreSharingTests : IClassFixture<RedisServerFixture>, IAsyncLifetime
{
    private static readonly DateTimeOffset ClockOfA = new(2026, 1, 1, 12, 0, 0, TimeSpan.Zero);

    // B's clock is an hour and a bit ahead of A's: shared deadlines must not move with it.
    private static readonly DateTimeOffset ClockOfB = ClockOfA + TimeSpan.FromMinutes(61.5);

    private readonly RedisServerFixture _redis;
    private readonly string _keyPrefix = $"test:{Guid.NewGuid():N}:";
    private ConnectionMultiplexer _inspector = null!;

    public RedisBackendStateStoreSharingTests(RedisServerFixture redis) => _redis = redis;

    private IDatabase Database => _inspector.GetDatabase();

    public async Task InitializeAsync() => _inspector = await ConnectionMultiplexer.ConnectAsync(_redis.Configuration);

    public async Task DisposeAsync() => await _inspector.DisposeAsync();

    [Fact]
    public async Task MarkOnOneReplica_IsPushedToAnother_AsTheRemainingTimeOnItsOwnClock()
    {
        await using var replicaA = await Replica.StartAsync(_redis.Configuration, _keyPrefix, ClockOfA);
        await using var replicaB = await Replica.StartAsync(_redis.Configuration, _keyPrefix, ClockOfB);

        await replicaA.MarkAsync("backend-x", TimeSpan.FromSeconds(30));

        var seenByB = await replicaB.WaitForAsync("backend-x");
        seenByB.Should().Be(new BackendUnavailability(ClockOfB + TimeSpan.FromSeconds(30), BackendUnavailableReason.Throttled));
    }

    [Fact]
    public async Task MultiplexerWithAChannelPrefix_StillCarriesMarks()
    {
        var configuration = _redis.Configuration + ",channelPrefix=app-one:";
        await using var replicaA = await Replica.StartAsync(configuration, _keyPrefix, ClockOfA);
        await using var replicaB = await Replica.StartAsync(configuration, _keyPrefix, ClockOfB);

        await replicaA.MarkAsync("backend-x", TimeSpan.FromSeconds(30));

        (await replicaB.WaitForAsync("backend-x")).Until.Should().Be(ClockOfB + TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task MarkUnavailableAsync_UpdatesTheLocalMirrorSynchronously_WithoutWaitingForRedis()
    {
        await using var replica = await Replica.StartAsync(_redis.Configuration, _keyPrefix);

        var marking = replica.MarkAsync("backend-x", TimeSpan.FromSeconds(30), BackendUnavailableReason.ServerError);

        marking.IsCompletedSuccessfully.Should().BeTrue();
        replica.Store.TryGetUnavailability(new BackendStateKey("backend-x"), out var local).Should().BeTrue();
        local.Should().Be(new BackendUnavailability(ClockOfA + TimeSpan.FromSeconds(30), BackendUnavailableReason.ServerError));
    }

    [Fact]
    public async Task Write_StoresTheReasonWithAnExpiryAtTheDeadline_AndTheKeyIsGoneAfterIt()
    {
        await using var replica = await Replica.StartAsync(_redis.Configuration, _keyPrefix);
        var key = _keyPrefix + "9:backend-x";

        await replica.MarkAsync("backend-x", TimeSpan.FromMilliseconds(500));

        // PTTL and value read in one atomic snapshot, polled until the background write has landed.
        RedisResult[] snapshot = [];
        await Eventually.HoldsAsync(
            async () => (long)(snapshot = (RedisResult[])(await Database.ScriptEvaluateAsync("return { redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[1]) }", [key]))!)[0] > 0,
            TimeSpan.FromSeconds(2),
            "the key is written");
        ((long)snapshot[0]).Should().BeInRange(1, 500);
        ((string?)snapshot[1]).Should().Be("1");

        // Redis's own clock expires the key: a short real wait, bounded.
        await Eventually.HoldsAsync(async () => !await Database.KeyExistsAsync(key), TimeSpan.FromSeconds(2), "the key expires");
        ((long)await Database.ExecuteAsync("PTTL", key)).Should().Be(-2);
    }

    [Fact]
    public async Task DeadlineAlreadyPassed_IsNeitherWrittenNorAnnounced()
    {
        await using var replica = await Replica.StartAsync(_redis.Configuration, _keyPrefix);
        var announcements = 0;
        await _inspector.GetSubscriber().SubscribeAsync(RedisChannel.Literal(_keyPrefix + "events"), (_, _) => Interlocked.Increment(ref announcements));

        await replica.MarkAsync("backend-x", TimeSpan.Zero);
        await replica.MarkAsync("backend-y", TimeSpan.FromSeconds(30));

        // backend-y goes through the same pipeline after backend-x: once it is announced, backend-x would have been too.
        await Eventually.HoldsAsync(() => Volatile.Read(ref announcements) == 1, TimeSpan.FromSeconds(2), "backend-y is announced");
        (await Database.KeyExistsAsync(_keyPrefix + "9:backend-x")).Should().BeFalse();
        announcements.Should().Be(1);
    }

    [Fact]
    public async Task ReplicaStartedLater_LoadsTheCurrentState()
    {
        await using var replicaA = await Replica.StartAsync(_redis.Configuration, _keyPrefix, ClockOfA);
        await replicaA.MarkAsync("backend-x", TimeSpan.FromSeconds(30));
        await replicaA.MarkAsync("backend|with|separators", TimeSpan.FromSeconds(20), BackendUnavailableReason.Timeout);
        await Eventually.HoldsAsync(async () => await Database.KeyExistsAsync(_keyPrefix + "23:backend|with|separators"), TimeSpan.FromSeconds(2), "both keys are written");

        await using var replicaB = await Replica.StartAsync(_redis.Configuration, _keyPrefix, ClockOfB);

        // Loaded from PTTL: the time already elapsed on Redis's clock is gone, nothing more.
        replicaB.Store.TryGetUnavailability(new BackendStateKey("backend-x"), out var x).Should().BeTrue();
        x.Reason.Should().Be(BackendUnavailableReason.Throttled);
        x.Until.Should().BeOnOrBefore(ClockOfB + TimeSpan.FromSeconds(30)).And.BeAfter(ClockOfB + TimeSpan.FromSeconds(25));
        replicaB.Store.TryGetUnavailability(new BackendStateKey("backend|with|separators"), out var other).Should().BeTrue();
        other.Reason.Should().Be(BackendUnavailableReason.Timeout);
        other.Until.Should().BeOnOrBefore(ClockOfB + TimeSpan.FromSeconds(20)).And.BeAfter(ClockOfB + TimeSpan.FromSeconds(15));
        replicaB.Store.TryGetUnavailability(new BackendStateKey("backend-never-marked"), out _).Should().BeFalse();
    }

    [Fact]
    public async Task ConcurrentMarksFromTwoReplicas_KeepTheLaterDeadline_InRedisAndInBothMirrors()
    {
        await using var replicaA = await Replica.StartAsync(_redis.Configuration, _keyPrefix, ClockOfA);
        await using var replicaB = await Replica.StartAsync(_redis.Configuration, _keyPrefix, ClockOfB);

        // 100 marks each, interleaved, from 10 s to 59.5 s; the longest (120 s, far from the others so that real time
        // passing on Redis's clock cannot blur the result) comes from B in the middle of the run.
        var marks = Enumerable.Range(0, 100).SelectMany(i => new[]
        {
            Task.Run(async () => await replicaA.MarkAsync("backend-x", TimeSpan.FromSeconds(10 + (i * 0.495)))),
            Task.Run(async () => await replicaB.MarkAsync("backend-x", TimeSpan.FromSeconds(i == 50 ? 120 : 10 + (i * 0.495)))),
        });
        await Task.WhenAll(marks);

        // A learns B's mark by push: exactly 120 s on A's own clock (a write answered by Redis may show it a moment
        // earlier as "120 s minus the time elapsed", which the push then extends).
        await replicaA.WaitForAsync("backend-x", u => u.Until == ClockOfA + TimeSpan.FromSeconds(120));
        replicaB.Store.TryGetUnavailability(new BackendStateKey("backend-x"), out var seenByB).Should().BeTrue();
        seenByB.Until.Should().Be(ClockOfB + TimeSpan.FromSeconds(120));

        await Eventually.HoldsAsync(async () => (long)await Database.ExecuteAsync("PTTL", _keyPrefix + "9:backend-x") > 60_000, TimeSpan.FromSeconds(2), "Redis holds the later deadline");
        ((long)await Database.ExecuteAsync("PTTL", _keyPrefix + "9:backend-x")).Should().BeInRange(100_000, 120_000);
    }

    [Fact]
    public async Task ShorterMark_NeverShortensTheSharedDeadline_AndTheWriterAdoptsTheLaterOne()
    {
        await using var replicaA = await Replica.StartAsync(_redis.Configuration, _keyPrefix, ClockOfA);
        await using var replicaB = await Replica.StartAsync(_redis.Configuration, _keyPrefix, ClockOfB);
        await replicaA.MarkAsync("backend-x", TimeSpan.FromSeconds(30));
        await replicaB.WaitForAsync("backend-x");
        var subscriber = _inspector.GetSubscriber();
        var announcements = 0;
        await subscriber.SubscribeAsync(RedisChannel.Literal(_keyPrefix + "events"), (_, message) =>
        {
            // A replica's echo to itself (it proves its subscription live before it loads) announces nothing.
            if (!message.ToString().StartsWith("echo|", StringComparison.Ordinal))
            {
                Interlocked.Increment(ref announcements);
            }
        });

        // A third replica that has not heard of A's mark yet reports a shorter throttling.
        await using var replicaC = Replica.Create(_redis.Configuration, _keyPrefix, ClockOfA);
        await replicaC.MarkAsync("backend-x", TimeSpan.FromSeconds(5));
        await replicaC.RedisStore.FirstSynchronization.WaitAsync(TimeSpan.FromSeconds(5));

        var seenByC = await replicaC.WaitForAsync("backend-x", u => u.Until > ClockOfA + TimeSpan.FromSeconds(5));
        seenByC.Until.Should().BeAfter(ClockOfA + TimeSpan.FromSeconds(25)).And.BeOnOrBefore(ClockOfA + TimeSpan.FromSeconds(30));
        ((long)await Database.ExecuteAsync("PTTL", _keyPrefix + "9:backend-x")).Should().BeGreaterThan(25_000);
        replicaB.Store.TryGetUnavailability(new BackendStateKey("backend-x"), out var seenByB).Should().BeTrue();
        seenByB.Until.Should().Be(ClockOfB + TimeSpan.FromSeconds(30));
        announcements.Should().Be(0, "a mark that changes nothing is not announced");
    }

    [Fact]
    public async Task StoreOverAMultiplexerFromTheServiceCollection_SharesState()
    {
        await using var shared = await ConnectionMultiplexer.ConnectAsync(_redis.Configuration);
        await using var replicaA = await Replica.StartAsync(_redis.Configuration, _keyPrefix, ClockOfA);
        var services = new ServiceCollection()
            .AddSingleton<TimeProvider>(new Microsoft.Extensions.Time.Testing.FakeTimeProvider(ClockOfB))
            .AddSingleton<IConnectionMultiplexer>(shared)
            .AddPriorityRoutingRedisStore(options => options.KeyPrefix = _keyPrefix);
        await using (var provider = services.BuildServiceProvider())
        {
            var store = provider.GetRequiredService<IBackendStateStore>();
            await ((RedisBackendStateStore)store).FirstSynchronization.WaitAsync(TimeSpan.FromSeconds(5));

            await replicaA.MarkAsync("backend-x", TimeSpan.FromSeconds(30));

            await Eventually.HoldsAsync(() => store.TryGetUnavailability(new BackendStateKey("backend-x"), out _), TimeSpan.FromSeconds(2), "the store learns about backend-x");
            store.TryGetUnavailability(new BackendStateKey("backend-x"), out var seen).Should().BeTrue();
            seen.Should().Be(new BackendUnavailability(ClockOfB + TimeSpan.FromSeconds(30), BackendUnavailableReason.Throttled));
        }

        // The multiplexer belongs to the app: disposing the store leaves it open.
        shared.IsConnected.Should().BeTrue();
    }

    [Fact]
    public async Task KeyTooLongToShare_IsKeptLocally_AndNeverWritten()
    {
        await using var replica = await Replica.StartAsync(_redis.Configuration, _keyPrefix);
        var tooLong = new BackendStateKey("b@https://b.example.net", new string('p', StateKeyEncoding.MaxPartitionLength + 1));

        await replica.MarkAsync(tooLong, TimeSpan.FromSeconds(30));
        await replica.MarkAsync("backend-y", TimeSpan.FromSeconds(30));

        // backend-y goes through the same pipeline after the long key: once it is written, the long key would have been.
        await Eventually.HoldsAsync(async () => await Database.KeyExistsAsync(_keyPrefix + "9:backend-y"), TimeSpan.FromSeconds(5), "backend-y is written");
        replica.Store.TryGetUnavailability(tooLong, out _).Should().BeTrue();
        (await _inspector.GetServers()[0].KeysAsync(pattern: _keyPrefix + "*").ToListAsync()).Should().ContainSingle();
        replica.WarningCount.Should().Be(0);
    }
}
