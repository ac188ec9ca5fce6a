using Polly.PriorityRouting.Redis.Tests.Support;

namespace Polly.PriorityRouting.Redis.Tests;

/// <summary>
/// What the store keeps while Redis is unreachable is bounded, and what expired is dropped.
/// </summary>
public sealed class RedisStoreBoundsTests
{
    // Nothing listens on port 1: the store never connects.
    private const string Unreachable = "127.0.0.1:1,connectTimeout=1000";

    [Fact]
    public async Task MarksWhileRedisIsUnreachable_KeepAtMostTheCapOfUnpublishedMarks()
    {
        await using var replica = Replica.Create(Unreachable, "bounds:");

        for (var i = 0; i < RedisBackendStateStore.MaxUnpublished + 500; i++)
        {
            await replica.MarkAsync(new BackendStateKey("b@https://b.example.net", $"partition-{i}"), TimeSpan.FromSeconds(30));
        }

        replica.RedisStore.UnpublishedCount.Should().Be(RedisBackendStateStore.MaxUnpublished);
    }

    [Fact]
    public async Task ExpiredUnpublishedMarks_AreDropped()
    {
        await using var replica = Replica.Create(Unreachable, "bounds:");
        for (var i = 0; i < 1000; i++)
        {
            await replica.MarkAsync(new BackendStateKey("b@https://b.example.net", $"partition-{i}"), TimeSpan.FromSeconds(10));
        }

        replica.Time.Advance(TimeSpan.FromMinutes(1));
        await replica.MarkAsync(new BackendStateKey("b@https://b.example.net", "fresh"), TimeSpan.FromSeconds(10));

        replica.RedisStore.UnpublishedCount.Should().Be(1);
    }
}
