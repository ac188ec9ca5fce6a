namespace Polly.PriorityRouting.Redis.Tests.Support;

/// <summary>
/// Two hosts (two service providers, two multiplexers) in front of the same two Kestrel backends, a primary (priority 1,
/// named <c>backend-1</c>) and a secondary (priority 2, <c>backend-2</c>), sharing one Redis.
/// </summary>
public sealed class TwoHostsOverOneRedis : IAsyncDisposable
{
    private TwoHostsOverOneRedis(FakeBackendServer primary, FakeBackendServer secondary, Replica hostA, Replica hostB)
    {
        Primary = primary;
        Secondary = secondary;
        HostA = hostA;
        HostB = hostB;
    }

    public FakeBackendServer Primary { get; }

    public FakeBackendServer Secondary { get; }

    public Replica HostA { get; }

    /// <summary>Gets the store key of the primary: <c>backend-1@{its address}</c>.</summary>
    public BackendStateKey PrimaryKey => RoutedHost.StateKeyOf("backend-1", Primary);

    /// <summary>Gets the store key of the secondary: <c>backend-2@{its address}</c>.</summary>
    public BackendStateKey SecondaryKey => RoutedHost.StateKeyOf("backend-2", Secondary);

    public Replica HostB { get; }

    public static async Task<TwoHostsOverOneRedis> StartAsync(RedisServerFixture redis, bool primaryThrottles)
    {
        var keyPrefix = $"test:{Guid.NewGuid():N}:";
        var primary = await FakeBackendServer.StartAsync(primaryThrottles);
        var secondary = await FakeBackendServer.StartAsync(throttles: false);
        var hostA = await RoutedHost.StartAsync(redis.Configuration, keyPrefix, primary, secondary);
        var hostB = await RoutedHost.StartAsync(redis.Configuration, keyPrefix, primary, secondary);
        return new TwoHostsOverOneRedis(primary, secondary, hostA, hostB);
    }

    public async ValueTask DisposeAsync()
    {
        await HostA.DisposeAsync();
        await HostB.DisposeAsync();
        await Primary.DisposeAsync();
        await Secondary.DisposeAsync();
    }
}
