using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis;

/// <summary>
/// An <see cref="IBackendStateStore"/> shared by every replica connected to one Redis: reads are served by a local
/// mirror, writes go to the mirror at once and to Redis in the background, and a pub/sub subscription keeps the mirror
/// current with what the other replicas learn.
/// </summary>
/// <remarks>
/// <para>
/// Redis is never on the request path. <see cref="TryGetUnavailability"/> reads memory only; <see cref="MarkUnavailableAsync"/>
/// completes synchronously and leaves the Redis write to a task the caller does not wait for. When Redis cannot be
/// reached the store goes on locally (fail-open), logs one warning per outage, remembers what it could not publish, and
/// on reconnection loads the shared state again and publishes what it learned meanwhile.
/// </para>
/// <para>
/// Deadlines cross the network as remaining milliseconds only (see <see cref="ThrottleMessage"/> and
/// <see cref="MarkUnavailableScript"/>), so that clock skew between replicas cannot move a deadline.
/// </para>
/// </remarks>
internal sealed partial class RedisBackendStateStore : IBackendStateStore, IAsyncDisposable, IDisposable
{
    private readonly InMemoryBackendStateStore _mirror = new();

    // What this replica itself marked while Redis could not be written; published by the next successful recovery.
    // Kept apart from the mirror so that only first-hand deadlines are published, never ones learned from others.
    private readonly ConcurrentDictionary<BackendStateKey, BackendUnavailability> _unpublished = new();
    private readonly SemaphoreSlim _recoveryLock = new(1, 1);
    private readonly TaskCompletionSource _firstSynchronization = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _disposing = new();
    private readonly string _instanceId = Guid.NewGuid().ToString("N");
    private readonly Task<IConnectionMultiplexer> _connecting;
    private readonly bool _ownsConnection;
    private readonly RedisStoreLayout _layout;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly Action<RedisChannel, RedisValue> _onMessage;

    // Hands the multiplexer over between the background start and disposal, whichever comes first.
    private readonly object _lifetimeGate = new();

    private IConnectionMultiplexer? _multiplexer;
    private string _publishedChannelName;
    private int _outage;
    private int _subscribed;
    private int _disposed;
    private int _loads;
    private int _restorations;
    private int _passes;
    private int _active;

    public RedisBackendStateStore(
        Task<IConnectionMultiplexer> connecting,
        bool ownsConnection,
        RedisStoreLayout layout,
        PriorityRoutingRedisStoreOptions options,
        TimeProvider timeProvider,
        ILogger<RedisBackendStateStore> logger)
    {
        _connecting = connecting;
        _ownsConnection = ownsConnection;
        _layout = layout;
        _timeProvider = timeProvider;
        _logger = logger;
        _onMessage = OnMessage;
        _publishedChannelName = layout.ChannelName;

        // Never on the caller's thread: the app starts whether or not Redis answers.
        _ = Task.Run(StartAsync);
    }

    /// <summary>
    /// Gets a task that completes once the store has subscribed and loaded the shared state for the first time.
    /// </summary>
    internal Task FirstSynchronization => _firstSynchronization.Task;

    /// <summary>
    /// Gets whether the store currently considers Redis unreachable.
    /// </summary>
    internal bool IsInOutage => Volatile.Read(ref _outage) == 1;

    // Test hooks.
    internal int UnpublishedCount => _unpublished.Count;

    internal int LoadCount => Volatile.Read(ref _loads);

    internal int RestorationCount => Volatile.Read(ref _restorations);

    internal int SynchronizationPasses => Volatile.Read(ref _passes);

    internal bool IsSynchronizing => Volatile.Read(ref _active) > 0;

    internal IConnectionMultiplexer? Multiplexer => _multiplexer;

    internal const int MaxUnpublished = 10_000;

    /// <inheritdoc/>
    public bool TryGetUnavailability(BackendStateKey key, out BackendUnavailability unavailability)
        => _mirror.TryGetUnavailability(key, out unavailability);

    /// <inheritdoc/>
    public IReadOnlyList<KeyValuePair<BackendStateKey, BackendUnavailability>> GetEntries(string backend)
        => _mirror.GetEntries(backend);

    /// <inheritdoc/>
    public ValueTask MarkUnavailableAsync(
        BackendStateKey key,
        BackendUnavailability unavailability,
        DateTimeOffset now,
        CancellationToken cancellationToken)
    {
        MarkLocally(key, unavailability, now);

        var remaining = unavailability.Until - now;
        if (remaining > TimeSpan.Zero && StateKeyEncoding.CanEncode(key))
        {
            // Not awaited on purpose: the request goes on while Redis is written; failures are handled inside.
            _ = PublishAsync(key, unavailability, ToWholeMilliseconds(remaining));
        }

        return default;
    }

    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    public async ValueTask DisposeAsync()
    {
        IConnectionMultiplexer? multiplexer;
        lock (_lifetimeGate)
        {
            if (_disposed == 1)
            {
                return;
            }

            _disposed = 1;
            multiplexer = _multiplexer;
        }

        await _disposing.CancelAsync().ConfigureAwait(false);

        // Still connecting: the background start releases the connection when it completes, so disposal never waits
        // for a connect timeout.
        if (multiplexer is not null)
        {
            await ReleaseAsync(multiplexer).ConfigureAwait(false);
        }

        // Neither the recovery lock nor the cancellation source is disposed: a recovery started by a late connection
        // event may still use them, and neither holds anything that needs releasing (no wait handle, no timer).
    }

    /// <summary>
    /// Returns the <c>channelPrefix</c> of the multiplexer's configuration: the script publishes on the raw channel name,
    /// so it must add the prefix the multiplexer adds to the subscription.
    /// </summary>
    private static string ChannelPrefixOf(IConnectionMultiplexer multiplexer)
    {
        try
        {
            return (string?)ConfigurationOptions.Parse(multiplexer.Configuration).ChannelPrefix ?? string.Empty;
        }
        catch (ArgumentException)
        {
            return string.Empty;
        }
    }

    private static long ToWholeMilliseconds(TimeSpan remaining) => Math.Max(1, (long)Math.Ceiling(remaining.TotalMilliseconds));

    private void MarkLocally(BackendStateKey key, BackendUnavailability unavailability, DateTimeOffset now)
    {
        _mirror.Mark(key, unavailability, now);
    }

    private async Task StartAsync()
    {
        IConnectionMultiplexer multiplexer;
        try
        {
            multiplexer = await _connecting.ConfigureAwait(false);
        }
        catch (Exception e)
        {
            // With AbortOnConnectFail=false this is rare (e.g. an unresolvable name): the store stays local for good.
            ReportOutage(e);
            return;
        }

        _publishedChannelName = ChannelPrefixOf(multiplexer) + _layout.ChannelName;
        lock (_lifetimeGate)
        {
            if (_disposed == 0)
            {
                _multiplexer = multiplexer;
                multiplexer.ConnectionFailed += OnConnectionFailed;
                multiplexer.ConnectionRestored += OnConnectionRestored;
            }
        }

        if (_multiplexer is null)
        {
            // Disposed while connecting.
            await ReleaseAsync(multiplexer).ConfigureAwait(false);
            return;
        }

        if (multiplexer.IsConnected)
        {
            await RecoverAsync(onlyDuringOutage: false).ConfigureAwait(false);
        }
        else
        {
            // The restoration event of the first successful connection starts the synchronization.
            ReportOutage(null);
        }
    }

    private async Task ReleaseAsync(IConnectionMultiplexer multiplexer)
    {
        multiplexer.ConnectionFailed -= OnConnectionFailed;
        multiplexer.ConnectionRestored -= OnConnectionRestored;
        try
        {
            await multiplexer.GetSubscriber().UnsubscribeAsync(_layout.Channel, _onMessage, CommandFlags.FireAndForget)
                .ConfigureAwait(false);
        }
        catch (Exception e) when (e is RedisException or ObjectDisposedException)
        {
            // Nothing to unsubscribe from when Redis is gone.
        }

        if (_ownsConnection)
        {
            await multiplexer.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task PublishAsync(BackendStateKey key, BackendUnavailability unavailability, long remainingMilliseconds)
    {
        if (_multiplexer is not { IsConnected: true } multiplexer)
        {
            // Still connecting, or in an outage: the next synchronization publishes it.
            KeepUnpublished(key, unavailability);
            if (_multiplexer is not null)
            {
                ReportOutage(null);
            }

            return;
        }

        try
        {
            await WriteAsync(multiplexer, key, remainingMilliseconds, unavailability.Reason).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            // Nobody awaits this task: every failure, whatever its type, ends here and never reaches a request.
            KeepUnpublished(key, unavailability);
            ReportOutage(e);
            return;
        }

        if (IsInOutage)
        {
            // The write went through although the store believed Redis gone (e.g. after a timeout): sync again.
            _ = RecoverAsync(onlyDuringOutage: true);
        }
    }

    /// <summary>
    /// Runs <see cref="MarkUnavailableScript"/> and, when Redis already holds a later deadline, adopts it locally.
    /// </summary>
    private async Task WriteAsync(IConnectionMultiplexer multiplexer, BackendStateKey key, long remainingMilliseconds, BackendUnavailableReason reason)
    {
        var message = new ThrottleMessage(_instanceId, remainingMilliseconds, reason, key);
        var result = await multiplexer.GetDatabase().ScriptEvaluateAsync(
            MarkUnavailableScript.Source,
            [_layout.KeyOf(key)],
            [remainingMilliseconds, (int)reason, _publishedChannelName, message.Format()]).ConfigureAwait(false);

        var inForce = (RedisResult[])result!;
        var remaining = (long)inForce[0];
        if (remaining > remainingMilliseconds)
        {
            // Another replica already holds the backend longer: this replica learns it from the answer.
            var now = _timeProvider.GetUtcNow();
            var reasonInForce = ThrottleMessage.ParseStoredReason((string?)inForce[1]);
            MarkLocally(key, new BackendUnavailability(now.AddMilliseconds(remaining), reasonInForce), now);
        }
    }

    private void OnMessage(RedisChannel channel, RedisValue payload)
    {
        if (!ThrottleMessage.TryParse(((string?)payload).AsSpan(), out var message))
        {
            Log.IgnoredMalformedMessage(_logger, channel.ToString());
            return;
        }

        if (message.Sender == _instanceId)
        {
            return;
        }

        // The writer sent the time left, not a moment: the deadline is set on this replica's own clock.
        var now = _timeProvider.GetUtcNow();
        MarkLocally(message.Key, new BackendUnavailability(now.AddMilliseconds(message.RemainingMilliseconds), message.Reason), now);
    }

    private void OnConnectionFailed(object? sender, ConnectionFailedEventArgs args) => ReportOutage(args.Exception);

    private void OnConnectionRestored(object? sender, ConnectionFailedEventArgs args)
    {
        _ = RecoverAsync(onlyDuringOutage: false);
        Interlocked.Increment(ref _restorations);
    }

    private void ReportOutage(Exception? exception)
    {
        if (Interlocked.Exchange(ref _outage, 1) == 0)
        {
            Log.RedisUnavailable(_logger, exception);
        }
    }

    /// <summary>
    /// Subscribes if needed, loads the shared state and publishes what was learned while Redis was unreachable.
    /// </summary>
    /// <param name="onlyDuringOutage">
    /// Whether to skip the work once another recovery has ended the outage: after an outage, many background writes
    /// succeed at once and must not each start a load.
    /// </param>
    /// <remarks>The subscription comes first, so that nothing published during the load is missed.</remarks>
    private async Task RecoverAsync(bool onlyDuringOutage)
    {
        Interlocked.Increment(ref _active);
        try
        {
            await RecoverCoreAsync(onlyDuringOutage).ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Increment(ref _passes);
            Interlocked.Decrement(ref _active);
        }
    }

    private async Task RecoverCoreAsync(bool onlyDuringOutage)
    {
        if (Volatile.Read(ref _disposed) == 1 || _multiplexer is not { IsConnected: true } multiplexer)
        {
            return;
        }

        try
        {
            await _recoveryLock.WaitAsync(_disposing.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        try
        {
            if (onlyDuringOutage && !IsInOutage)
            {
                return;
            }

            await EnsureSubscribedAsync(multiplexer).ConfigureAwait(false);
            var loaded = await LoadAsync(multiplexer).ConfigureAwait(false);
            var published = await PublishUnpublishedAsync(multiplexer).ConfigureAwait(false);

            if (Interlocked.Exchange(ref _outage, 0) == 1)
            {
                Log.RedisAvailableAgain(_logger, loaded, published);
            }

            _firstSynchronization.TrySetResult();
        }
        catch (Exception e)
        {
            // Still unreachable or half-connected: the next restoration event tries again.
            ReportOutage(e);
        }
        finally
        {
            _recoveryLock.Release();
        }
    }

    private async Task EnsureSubscribedAsync(IConnectionMultiplexer multiplexer)
    {
        if (Volatile.Read(ref _subscribed) == 1)
        {
            // StackExchange.Redis itself subscribes again on every reconnection.
            return;
        }

        var subscriber = multiplexer.GetSubscriber();

        // A failed earlier attempt may have left the handler registered: never register it twice.
        await subscriber.UnsubscribeAsync(_layout.Channel, _onMessage).ConfigureAwait(false);
        await subscriber.SubscribeAsync(_layout.Channel, _onMessage).ConfigureAwait(false);
        Volatile.Write(ref _subscribed, 1);
    }

    /// <summary>
    /// Reads every key under the prefix with <c>SCAN</c>, then its <c>PTTL</c> and value, into the mirror.
    /// </summary>
    private async Task<int> LoadAsync(IConnectionMultiplexer multiplexer)
    {
        Interlocked.Increment(ref _loads);
        var database = multiplexer.GetDatabase();
        var reads = new List<(BackendStateKey Key, Task<TimeSpan?> TimeToLive, Task<RedisValue> Reason)>();
        foreach (var server in multiplexer.GetServers())
        {
            if (server.IsReplica || !server.IsConnected)
            {
                continue;
            }

            await foreach (var key in server.KeysAsync(database.Database, _layout.ScanPattern).ConfigureAwait(false))
            {
                if (_layout.TryGetStateKey(key, out var stateKey))
                {
                    // Not awaited one by one: the reads of all keys are pipelined.
                    reads.Add((stateKey, database.KeyTimeToLiveAsync(key), database.StringGetAsync(key)));
                }
            }
        }

        var loaded = 0;
        foreach (var (key, timeToLive, reason) in reads)
        {
            var remaining = await timeToLive.ConfigureAwait(false);
            var value = await reason.ConfigureAwait(false);
            if (remaining is { } left && left > TimeSpan.Zero)
            {
                var now = _timeProvider.GetUtcNow();
                MarkLocally(key, new BackendUnavailability(now + left, ThrottleMessage.ParseStoredReason((string?)value)), now);
                loaded++;
            }
        }

        return loaded;
    }

    private void KeepUnpublished(BackendStateKey key, BackendUnavailability unavailability)
        => _unpublished.AddOrUpdate(key, unavailability, (_, kept) => kept.Until >= unavailability.Until ? kept : unavailability);

    private async Task<int> PublishUnpublishedAsync(IConnectionMultiplexer multiplexer)
    {
        var published = 0;
        foreach (var (key, unavailability) in _unpublished)
        {
            // Removed only if unchanged: a later mark made meanwhile stays for the next round.
            _unpublished.TryRemove(new KeyValuePair<BackendStateKey, BackendUnavailability>(key, unavailability));
            var now = _timeProvider.GetUtcNow();
            if (!unavailability.IsActiveAt(now))
            {
                continue;
            }

            try
            {
                await WriteAsync(multiplexer, key, ToWholeMilliseconds(unavailability.Until - now), unavailability.Reason)
                    .ConfigureAwait(false);
                published++;
            }
            catch
            {
                KeepUnpublished(key, unavailability);
                throw;
            }
        }

        return published;
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning,
            "Redis is unreachable: backend throttle state is no longer shared and is kept locally until Redis returns. Requests are not affected.")]
        public static partial void RedisUnavailable(ILogger logger, Exception? exception);

        [LoggerMessage(2, LogLevel.Information,
            "Redis is reachable again: throttle state is shared again ({Loaded} deadlines loaded, {Published} deadlines learned meanwhile published).")]
        public static partial void RedisAvailableAgain(ILogger logger, int loaded, int published);

        [LoggerMessage(3, LogLevel.Debug, "Ignored a malformed message on the channel {Channel}.")]
        public static partial void IgnoredMalformedMessage(ILogger logger, string channel);
    }
}
