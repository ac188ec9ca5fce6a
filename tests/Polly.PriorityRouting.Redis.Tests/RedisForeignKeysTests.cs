using Microsoft.Extensions.Logging;
using Polly.PriorityRouting.Redis.Tests.Support;
using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis.Tests;

/// <summary>
/// Keys under the prefix that the store did not write — another type, a garbage value, a name it cannot read — are
/// skipped: the rest of the state loads, and no outage is reported.
/// </summary>
public sealed class RedisForeignKeysTests : IClassFixture<RedisServerFixture>, IAsyncLifetime
{
    private readonly RedisServerFixture _redis;
    private readonly string _keyPrefix = $"test:{Guid.NewGuid():N}:";
    private ConnectionMultiplexer _inspector = null!;

    public RedisForeignKeysTests(RedisServerFixture redis) => _redis = redis;

    private IDatabase Database => _inspector.GetDatabase();

    public async Task InitializeAsync() => _inspector = await ConnectionMultiplexer.ConnectAsync(_redis.Configuration);

    public async Task DisposeAsync() => await _inspector.DisposeAsync();

    [Fact]
    public async Task KeysOfOtherTypesAndGarbageValues_AreSkipped_AndTheStateLoadsWithoutAWarning()
    {
        var hash = new BackendStateKey("hash@https://h.example.net");
        var list = new BackendStateKey("list@https://l.example.net");
        var garbage = new BackendStateKey("garbage@https://g.example.net");
        var valid = new BackendStateKey("valid@https://v.example.net", "gpt-4o");
        await Database.HashSetAsync(Layout.KeyOf(hash), "field", "1");
        await Database.KeyExpireAsync(Layout.KeyOf(hash), TimeSpan.FromSeconds(30));
        await Database.ListRightPushAsync(Layout.KeyOf(list), "1");
        await Database.KeyExpireAsync(Layout.KeyOf(list), TimeSpan.FromSeconds(30));
        await Database.StringSetAsync(Layout.KeyOf(garbage), "not a reason", TimeSpan.FromSeconds(30));
        await Database.StringSetAsync(_keyPrefix + "not-an-encoded-key", "1", TimeSpan.FromSeconds(30));
        await Database.StringSetAsync(Layout.KeyOf(valid), "4", TimeSpan.FromSeconds(30));

        await using var replica = await Replica.StartAsync(_redis.Configuration, _keyPrefix);

        replica.Store.TryGetUnavailability(valid, out var loaded).Should().BeTrue();
        loaded.Reason.Should().Be(BackendUnavailableReason.Timeout);
        loaded.Until.Should().BeAfter(replica.Time.GetUtcNow() + TimeSpan.FromSeconds(20)).And.BeOnOrBefore(replica.Time.GetUtcNow() + TimeSpan.FromSeconds(30));
        replica.Store.TryGetUnavailability(hash, out _).Should().BeFalse();
        replica.Store.TryGetUnavailability(list, out _).Should().BeFalse();
        replica.Store.TryGetUnavailability(garbage, out _).Should().BeFalse();
        replica.StoreLogs.Where(r => r.Level == LogLevel.Warning).Select(r => r.Message + " " + r.Exception).Should().BeEmpty("nothing failed (a start still under way is no outage)");
        replica.RedisStore.IsInOutage.Should().BeFalse();
    }

    [Fact]
    public async Task MarkOverAKeyOfAnotherType_ReplacesIt_WithoutAWarning()
    {
        await using var replica = await Replica.StartAsync(_redis.Configuration, _keyPrefix);
        var key = new BackendStateKey("hash@https://h.example.net");
        await Database.HashSetAsync(Layout.KeyOf(key), "field", "1");
        await Database.KeyExpireAsync(Layout.KeyOf(key), TimeSpan.FromSeconds(60));

        await replica.MarkAsync(key, TimeSpan.FromSeconds(30));

        await Eventually.HoldsAsync(async () => await Database.KeyTypeAsync(Layout.KeyOf(key)) == RedisType.String, TimeSpan.FromSeconds(5), "the mark replaces the hash");
        ((string?)await Database.StringGetAsync(Layout.KeyOf(key))).Should().Be("1");
        ((long)await Database.ExecuteAsync("PTTL", Layout.KeyOf(key))).Should().BeInRange(1, 30_000);
        replica.WarningCount.Should().Be(0);
    }

    private RedisStoreLayout Layout => new(_keyPrefix, _keyPrefix + "events");
}
