using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace Polly.PriorityRouting.Redis.Tests.Support;

/// <summary>
/// One replica of an app: its own service provider, multiplexer, Redis store, fake clock and captured logs.
/// </summary>
public sealed class Replica : IAsyncDisposable
{
    private readonly ServiceProvider _services;

    private Replica(ServiceProvider services, FakeTimeProvider time)
    {
        _services = services;
        Time = time;
        Store = services.GetRequiredService<IBackendStateStore>();
        Logs = services.GetFakeLogCollector();
    }

    public IBackendStateStore Store { get; }

    internal RedisBackendStateStore RedisStore => RedisReservingStateStore.Find(Store)!;

    public FakeTimeProvider Time { get; }

    public FakeLogCollector Logs { get; }

    public IServiceProvider Services => _services;

    public static Replica Create(string configuration, string keyPrefix, DateTimeOffset? clock = null, Action<IServiceCollection>? configureServices = null)
    {
        var time = new FakeTimeProvider(clock ?? new DateTimeOffset(2026, 1, 1, 12, 0, 0, TimeSpan.Zero));
        var services = new ServiceCollection()
            .AddLogging(logging => logging.AddFakeLogging().SetMinimumLevel(LogLevel.Debug))
            .AddSingleton<TimeProvider>(time)
            .AddPriorityRoutingRedisStore(configuration, options => options.KeyPrefix = keyPrefix);
        configureServices?.Invoke(services);
        return new Replica(services.BuildServiceProvider(), time);
    }

    public static async Task<Replica> StartAsync(string configuration, string keyPrefix, DateTimeOffset? clock = null, Action<IServiceCollection>? configureServices = null)
    {
        var replica = Create(configuration, keyPrefix, clock, configureServices);
        await replica.RedisStore.FirstSynchronization.WaitAsync(TimeSpan.FromSeconds(5));
        return replica;
    }

    /// <summary>
    /// Gets what the store logged, apart from the logs of the HTTP client and of the resilience pipeline.
    /// </summary>
    public IReadOnlyList<FakeLogRecord> StoreLogs
        => [.. Logs.GetSnapshot().Where(record => record.Category == typeof(RedisBackendStateStore).FullName)];

    public int WarningCount => StoreLogs.Count(record => record.Level == LogLevel.Warning);

    public ValueTask MarkAsync(string backend, TimeSpan cooldown, BackendUnavailableReason reason = BackendUnavailableReason.Throttled)
        => MarkAsync(new BackendStateKey(backend), cooldown, reason);

    public ValueTask MarkAsync(BackendStateKey key, TimeSpan cooldown, BackendUnavailableReason reason = BackendUnavailableReason.Throttled)
    {
        var now = Time.GetUtcNow();
        return Store.MarkUnavailableAsync(key, new BackendUnavailability(now + cooldown, reason), now, CancellationToken.None);
    }

    /// <summary>
    /// Waits, bounded, until the replica's mirror holds an entry for the backend that satisfies the condition.
    /// </summary>
    public Task<BackendUnavailability> WaitForAsync(string backend, Func<BackendUnavailability, bool>? condition = null, TimeSpan? timeout = null)
        => WaitForAsync(new BackendStateKey(backend), condition, timeout);

    /// <summary>
    /// Waits, bounded, until the replica's mirror holds an entry for the key that satisfies the condition.
    /// </summary>
    public async Task<BackendUnavailability> WaitForAsync(BackendStateKey key, Func<BackendUnavailability, bool>? condition = null, TimeSpan? timeout = null)
    {
        BackendUnavailability found = default;
        await Eventually.HoldsAsync(
            () => Store.TryGetUnavailability(key, out found) && (condition?.Invoke(found) ?? true),
            timeout ?? TimeSpan.FromSeconds(2),
            $"the replica learns about '{key}'");
        return found;
    }

    public ValueTask DisposeAsync() => _services.DisposeAsync();
}
