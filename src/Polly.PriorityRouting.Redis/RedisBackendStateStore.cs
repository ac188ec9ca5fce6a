using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis;

/// <summary>
/// An <see cref="IBackendStateStore"/> shared by every replica connected to one Redis: reads are served by a local
/// mirror, writes go to the mirror at once and to Redis in the background, and a pub/sub subscription keeps the mirror
/// current with what the other replicas learn. As an <see cref="IBackendBudgetStore"/> it also carries the budgets the
/// replicas' answers report, on the same channel (<see cref="RedisBudgetChannel"/>). With
/// <see cref="PriorityRoutingRedisStoreOptions.Reservations"/> on it also holds the shared reservations
/// (<see cref="RedisReservations"/>), which the service collection exposes through <see cref="RedisReservingStateStore"/>.
/// </summary>
/// <remarks>
/// <para>
/// Redis is never on the request path. <see cref="TryGetUnavailability"/> reads memory only; <see cref="MarkUnavailableAsync"/>
/// completes synchronously and leaves the Redis write to a task the caller does not wait for. When Redis cannot be
/// reached the store goes on locally (fail-open): <see cref="RedisOutageState"/> logs one warning per outage,
/// <see cref="UnpublishedMarks"/> keeps (bounded) what could not be written, and <see cref="RedisSynchronizer"/> loads
/// the shared state again and publishes it when Redis returns.
/// </para>
/// <para>
/// Deadlines cross the network as remaining milliseconds only (see <see cref="ThrottleMessage"/> and
/// <see cref="MarkUnavailableScript"/>), so that clock skew between replicas cannot move a deadline, and a deadline
/// from elsewhere is held at most <see cref="PriorityRoutingRedisStoreOptions.MaxUnavailability"/>.
/// </para>
/// </remarks>
internal sealed partial class RedisBackendStateStore : IBackendStateStore, IBackendBudgetStore, IAsyncDisposable, IDisposable
{
    /// <summary>The most marks kept for publication while Redis cannot be written.</summary>
    internal const int MaxUnpublished = UnpublishedMarks.DefaultCapacity;

    private readonly LocalMirror _mirror;
    private readonly UnpublishedMarks _unpublished = new();
    private readonly UnpublishedPins _unpublishedPins = new();
    private readonly CancellationTokenSource _disposing = new();
    private readonly RedisConnection _connection;
    private readonly RedisMarkWriter _writer;
    private readonly RedisBudgetChannel _budgets;
    private readonly RedisSynchronizer _synchronizer;
    private readonly RedisReservations? _reservations;
    private readonly ILogger _logger;
    private int _disposed;

    public RedisBackendStateStore(
        Task<IConnectionMultiplexer> connecting,
        bool ownsConnection,
        RedisStoreLayout layout,
        PriorityRoutingRedisStoreOptions options,
        TimeProvider timeProvider,
        ILogger<RedisBackendStateStore> logger)
    {
        var instanceId = Guid.NewGuid().ToString("N");
        _logger = logger;
        _mirror = new LocalMirror(timeProvider, options.MaxUnavailability);
        _connection = new RedisConnection(connecting, ownsConnection, logger);
        _writer = new RedisMarkWriter(layout, _mirror, instanceId);
        _budgets = new RedisBudgetChannel(_connection, layout, _mirror, instanceId, options.BudgetPublishInterval, _disposing.Token);
        _synchronizer = new RedisSynchronizer(_connection, layout, _mirror, _unpublished, _unpublishedPins, _writer, _budgets, instanceId, logger, _disposing.Token);
        Affinity = new RedisAffinityStore(_connection, _synchronizer, layout, _unpublishedPins, timeProvider, options.AffinityTimeout);
        if (options.Reservations)
        {
            _reservations = new RedisReservations(
                _connection, _synchronizer.Request, layout, timeProvider, options.ReservationTimeout, options.MaxUnavailability, logger, _disposing.Token);
        }

        // Never on the caller's thread: the app starts whether or not Redis answers.
        _ = Task.Run(StartAsync);
    }

    /// <summary>
    /// Gets the affinity store that shares this store's connection: one connection, one outage, one synchronization.
    /// </summary>
    internal RedisAffinityStore Affinity { get; }

    /// <summary>Gets a task that completes once the store has subscribed and loaded the shared state for the first time.</summary>
    internal Task FirstSynchronization => _synchronizer.FirstSynchronization;

    /// <summary>
    /// Waits until the first load of the shared state, an outage (Redis unreachable), or <paramref name="timeout"/>,
    /// whichever comes first; never throws for Redis's sake.
    /// </summary>
    internal async Task WaitForFirstLoadAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var loadedOrUnreachable = Task.WhenAny(FirstSynchronization, _connection.Outage.FirstOutage);
        try
        {
            // Real time: this bounds a start, it measures no deadline.
            await loadedOrUnreachable.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // Redis is slow: start with what is known locally; the load goes on in the background.
        }
    }

    /// <summary>Gets whether the store currently considers its state not shared, and has warned of it.</summary>
    internal bool IsInOutage => _connection.Outage.IsInOutage;

    /// <summary>Gets whether a failure came since the state was last shared (a test hook).</summary>
    internal bool IsUnshared => _connection.Outage.IsUnshared;

    // Test hooks.
    internal int UnpublishedCount => _unpublished.Count;

    internal int LoadCount => _synchronizer.LoadCount;

    internal int RestorationCount => _connection.RestorationCount;

    internal int SynchronizationPasses => _synchronizer.Passes;

    internal bool IsSynchronizing => _synchronizer.IsSynchronizing;

    internal IConnectionMultiplexer? Multiplexer => _connection.Multiplexer;

    internal RedisBudgetChannel Budgets => _budgets;

    /// <summary>Gets the shared reservations; <see langword="null"/> unless <see cref="PriorityRoutingRedisStoreOptions.Reservations"/> is on.</summary>
    internal RedisReservations? Reservations => _reservations;

    /// <inheritdoc/>
    public int PeerCount => _budgets.PeerCount;

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
        _mirror.MarkOwn(key, unavailability, now);

        var remaining = unavailability.Until - now;
        if (remaining <= TimeSpan.Zero)
        {
            return default;
        }

        if (!StateKeyEncoding.CanEncode(key))
        {
            Log.KeyTooLongToShare(_logger, key.Backend.Length, key.Partition?.Length ?? 0);
            return default;
        }

        // Not awaited on purpose: the request goes on while Redis is written; failures are handled inside.
        _ = PublishAsync(key, unavailability, _mirror.ToSharedMilliseconds(remaining));
        return default;
    }

    /// <inheritdoc/>
    public void PublishBudget(BackendStateKey key, BackendBudgetObservation observation, DateTimeOffset now) => _budgets.Publish(key, observation);

    /// <inheritdoc/>
    public void SubscribeToBudgets(Action<BackendStateKey, BackendBudgetObservation> onObservation) => _budgets.Subscribe(onObservation);

    /// <summary>
    /// Stops synchronizing, unsubscribes without waiting and closes an owned connection synchronously: never blocks on
    /// asynchronous work. Prefer <see cref="DisposeAsync"/>, which the service provider calls when disposed asynchronously.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        _disposing.Cancel();
        _synchronizer.Unsubscribe();
        _connection.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        await _disposing.CancelAsync().ConfigureAwait(false);
        _synchronizer.Unsubscribe();
        await _connection.DisposeAsync().ConfigureAwait(false);

        // The cancellation source is not disposed: a late connection event may still read its token, and it holds no
        // wait handle nor timer.
    }

    private async Task StartAsync()
    {
        if (await _connection.ConnectAsync(_synchronizer.Request, _synchronizer.IsSpare).ConfigureAwait(false) is not { } multiplexer)
        {
            return;
        }

        _writer.UseChannelPrefix(RedisConnection.ChannelPrefixOf(multiplexer));
        if (multiplexer.IsConnected)
        {
            _synchronizer.Request();
        }
        else
        {
            // The first connection attempt failed (Redis down or unreachable at start): an outage to warn about. The
            // restoration event of the first successful connection starts the synchronization.
            _connection.Outage.ReportLastingFailure(null);
        }
    }

    private async Task PublishAsync(BackendStateKey key, BackendUnavailability unavailability, long remainingMilliseconds)
    {
        if (_connection.Writable() is not { } multiplexer)
        {
            // Still connecting, or no single writable primary right now: the synchronization that shares it publishes it
            // (asked for if the store became writable meanwhile, after a pass had published).
            _unpublished.Keep(key, unavailability, _mirror.Now);
            if (_connection.Writable() is not null)
            {
                _synchronizer.Request();
            }

            return;
        }

        try
        {
            await _writer.WriteAsync(multiplexer, key, remainingMilliseconds, unavailability.Reason).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            // Nobody awaits this task: every failure, whatever its type, ends here and never reaches a request. Kept
            // before it is reported, so that the synchronization the report requests publishes it.
            _unpublished.Keep(key, unavailability, _mirror.Now);
            _connection.Outage.ReportFailure(e);
            return;
        }

        if (_connection.Outage.IsUnshared)
        {
            // The write went through although the state is not shared (e.g. after a timeout): synchronize again.
            _synchronizer.Request();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(5, LogLevel.Debug,
            "A mark is kept locally only: its backend identity ({BackendLength} characters) or partition ({PartitionLength}) is too long to share.")]
        public static partial void KeyTooLongToShare(ILogger logger, int backendLength, int partitionLength);
    }
}
