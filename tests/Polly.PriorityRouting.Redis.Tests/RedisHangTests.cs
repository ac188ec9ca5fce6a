using System.Diagnostics;
using Polly.PriorityRouting.Redis.Tests.Support;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace Polly.PriorityRouting.Redis.Tests;

/// <summary>
/// A Redis that hangs (SIGSTOP: the connections stay open, nothing is answered) never holds a request: the caller's
/// cancellation ends a lookup at once, a pin waits at most <see cref="PriorityRoutingRedisStoreOptions.AffinityTimeout"/>,
/// and once the outage is declared no request waits for Redis at all.
/// </summary>
public sealed class RedisHangTests : IClassFixture<RedisServerFixture>
{
    // StackExchange.Redis's own command timeout (5 s by default) is what a request waited before.
    private static readonly TimeSpan WellUnderTheCommandTimeout = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan Recovery = TimeSpan.FromSeconds(20);

    private readonly RedisServerFixture _redis;
    private readonly string _keyPrefix = $"test:{Guid.NewGuid():N}:";

    private readonly ITestOutputHelper _output;

    public RedisHangTests(RedisServerFixture redis, ITestOutputHelper output) => (_redis, _output) = (redis, output);

    [Fact]
    public async Task A_lookup_whose_caller_cancels_while_redis_hangs_ends_with_the_callers_cancellation()
    {
        await using var replica = await Replica.StartAsync(_redis.Configuration, _keyPrefix);
        var affinity = replica.RedisStore.Affinity;
        _redis.Pause();
        try
        {
            using var cancellation = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
            var waited = Stopwatch.StartNew();

            var lookup = async () => await affinity.FindAsync("resp_never_seen", cancellation.Token);

            await lookup.Should().ThrowAsync<OperationCanceledException>("the caller gave up: the lookup is the caller's, not Redis's");
            _output.WriteLine($"A lookup cancelled at 300 ms ended after {waited.ElapsedMilliseconds} ms.");
            waited.Elapsed.Should().BeLessThan(WellUnderTheCommandTimeout);
        }
        finally
        {
            _redis.Resume();
        }
    }

    [Fact]
    public async Task While_redis_hangs_a_pin_waits_at_most_the_affinity_timeout_once_and_after_that_not_at_all()
    {
        await using var replica = await Replica.StartAsync(_redis.Configuration, _keyPrefix);
        var affinity = replica.RedisStore.Affinity;
        _redis.Pause();
        try
        {
            var waited = Stopwatch.StartNew();
            await affinity.PinAsync("resp_first", "a@http://a", TimeSpan.FromMinutes(5), CancellationToken.None);
            _output.WriteLine($"The first pin while Redis hangs took {waited.ElapsedMilliseconds} ms.");
            waited.Elapsed.Should().BeLessThan(WellUnderTheCommandTimeout, "a pin waits for Redis at most the affinity timeout (1 s)");

            for (var i = 0; i < 5; i++)
            {
                CompletedAtOnce(affinity.PinAsync($"resp_{i}", "a@http://a", TimeSpan.FromMinutes(5), CancellationToken.None))
                    .Should().BeTrue("after a failure a pin is kept locally without waiting for Redis");
                (await affinity.FindAsync($"resp_{i}", CancellationToken.None)).Should().Be("a@http://a");
            }

            CompletedAtOnce(affinity.FindAsync("resp_never_seen", CancellationToken.None)).Should().BeTrue("after a failure a lookup answers from memory");
            affinity.UnpublishedPinCount.Should().Be(6);

            // The synchronization the failure requested finds Redis still silent (its echo times out, 2 s): the outage is
            // declared, and warned of.
            await Eventually.HoldsAsync(() => replica.RedisStore.IsInOutage && replica.WarningCount == 1, TimeSpan.FromSeconds(10), "the outage is declared");
            replica.StoreLogs.Where(record => record.Level == Microsoft.Extensions.Logging.LogLevel.Warning).Select(record => record.Message + " " + record.Exception?.Message)
                .Should().ContainSingle("one outage, one warning");
        }
        finally
        {
            _redis.Resume();
        }

        // Redis answers again: the outage ends without any request touching Redis, and the pins kept are published.
        await Eventually.HoldsAsync(() => !replica.RedisStore.IsInOutage, Recovery, "the store ends the outage once Redis answers");
        await using var inspector = await ConnectionMultiplexer.ConnectAsync(_redis.Configuration);
        (await inspector.GetDatabase().StringGetAsync("affinity:" + _keyPrefix + "resp_4")).ToString().Should().Be("a@http://a");
        affinity.UnpublishedPinCount.Should().Be(0);

        // No warning count here: StackExchange.Redis may still drop the connection that stalled, after the recovery,
        // which is a second outage of its own.
    }

    [Fact]
    public async Task A_fresh_replica_whose_redis_hangs_starts_within_the_first_load_timeout_and_serves_its_first_request()
    {
        await using var backend = await FakeBackendServer.StartAsync(throttles: false);
        _redis.Pause();
        try
        {
            var started = Stopwatch.StartNew();
            await using var replica = await FreshHost.StartAsync(
                _redis.Configuration, _keyPrefix, [backend], options => options.FirstLoadTimeout = TimeSpan.FromMilliseconds(500));
            using var answer = await replica.Client.GetAsync(RoutedHost.AnyPath);

            answer.StatusCode.Should().Be(System.Net.HttpStatusCode.OK);
            started.Elapsed.Should().BeLessThan(WellUnderTheCommandTimeout, "the start waits at most the first-load timeout, and the request not at all");
            backend.Hits.Should().Be(1);
        }
        finally
        {
            _redis.Resume();
        }
    }

    private static bool CompletedAtOnce(ValueTask task)
    {
        var completed = task.IsCompleted;
        _ = task.AsTask();
        return completed;
    }

    private static bool CompletedAtOnce<T>(ValueTask<T> task)
    {
        var completed = task.IsCompleted;
        _ = task.AsTask();
        return completed;
    }
}
