using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis;

/// <summary>
/// The store's connection to Redis and whether its state is shared right now: hands the multiplexer over between the
/// background start and disposal, turns connection events into one warning per outage, and says "shared again" only
/// when a synchronization proves it.
/// </summary>
/// <remarks>
/// <para>
/// Every failure — a connection lost (unless to a node the state does not use), a command that fails or times out, a
/// synchronization that cannot share the state — is <see cref="ReportFailure">reported</see> here, and one rule decides
/// what it means: the state is unshared from the first failure until a synchronization completes with no failure
/// reported since it began, and that is an outage, warned of once, when the state is still unshared
/// <see cref="OutageAfter"/> after the first failure (after a lone timeout, only if the synchronization then fails
/// too). A command that fails or stalls
/// while StackExchange.Redis reconfigures (a returning old primary, the connections Sentinel closes) is therefore no
/// outage: the synchronization it requests shares the state again, publishes what was kept meanwhile, and nothing is
/// logged.
/// </para>
/// <para>
/// Nothing is written to Redis while two nodes say they are the primary (<see cref="Writable"/>): what is learned is
/// kept, and the synchronization that shares the state publishes it once one of them is a replica again.
/// </para>
/// </remarks>
internal sealed partial class RedisConnection : IDisposable, IAsyncDisposable
{
    /// <summary>
    /// How long the state must stay unshared after a failure before it is an outage: a failed synchronization is retried
    /// after half a second, and a failover's one failed command is then repaired; a failover itself takes seconds.
    /// </summary>
    private static readonly TimeSpan OutageAfter = TimeSpan.FromSeconds(1);

    /// <summary>How long a multiplexer that cannot route to the primary it is connected to is waited for (<see cref="IsStaleRouting"/>).</summary>
    private static readonly TimeSpan RoutingGrace = TimeSpan.FromSeconds(15);

    private readonly Task<IConnectionMultiplexer> _connecting;
    private readonly bool _ownsConnection;
    private readonly ILogger _logger;

    // Guards the multiplexer handover, the unshared and outage flags and the failure count.
    private readonly object _gate = new();

    private IConnectionMultiplexer? _multiplexer;
    private readonly TaskCompletionSource _firstOutage = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private Action? _synchronize;
    private Func<System.Net.EndPoint?, bool>? _isSpare;
    private bool _disposed;
    private bool _unshared;
    private bool _inOutage;
    private Exception? _firstFailure;
    private bool _started;
    private bool _replicaReported;
    private bool _everShared;
    private long _unsharedSince = Environment.TickCount64;
    private long? _failingSince;
    private bool _notAStall;
    private long _failures;
    private int _restorations;

    public RedisConnection(Task<IConnectionMultiplexer> connecting, bool ownsConnection, ILogger logger)
    {
        _connecting = connecting;
        _ownsConnection = ownsConnection;
        _logger = logger;
    }

    /// <summary>Gets the multiplexer once connected in the background, or <see langword="null"/>.</summary>
    public IConnectionMultiplexer? Multiplexer => Volatile.Read(ref _multiplexer);

    /// <summary>Gets whether an outage was declared (and not yet ended).</summary>
    public bool IsInOutage
    {
        get
        {
            lock (_gate)
            {
                return _inOutage;
            }
        }
    }

    /// <summary>
    /// Gets whether a failure was reported since the state was last shared: an outage, or failures not yet long enough
    /// to be one. The synchronization runs until it ends.
    /// </summary>
    public bool IsUnshared
    {
        get
        {
            lock (_gate)
            {
                return _unshared;
            }
        }
    }

    /// <summary>Gets how many failures were reported so far; a synchronization ends an outage only if none came since it began.</summary>
    public long Failures
    {
        get
        {
            lock (_gate)
            {
                return _failures;
            }
        }
    }

    /// <summary>Gets a task that completes when the first outage is declared (Redis unreachable at start, say).</summary>
    public Task FirstOutage => _firstOutage.Task;

    /// <summary>Gets how long the state has not been shared: since the store began, or since the outage began.</summary>
    public TimeSpan UnsharedFor
    {
        get
        {
            lock (_gate)
            {
                return _unshared || !_everShared ? TimeSpan.FromMilliseconds(Environment.TickCount64 - _unsharedSince) : TimeSpan.Zero;
            }
        }
    }

    /// <summary>Gets how many connection restorations were reported (a test hook).</summary>
    public int RestorationCount => Volatile.Read(ref _restorations);

    /// <summary>
    /// Gets the <c>channelPrefix</c> of the multiplexer's configuration: the script publishes on the raw channel name,
    /// so it must add the prefix the multiplexer adds to the subscription.
    /// </summary>
    public static string ChannelPrefixOf(IConnectionMultiplexer multiplexer)
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

    /// <summary>
    /// Waits for the background connection and hooks its events; returns <see langword="null"/> when it failed for good
    /// or the store was disposed meanwhile.
    /// </summary>
    /// <param name="synchronize">
    /// Called on every restored connection, on every configuration change (a failover), and when the state becomes
    /// unshared (so that the synchronization, not the requests, finds out when Redis answers again); on the thread that
    /// raises it.
    /// </param>
    /// <param name="isSpare">
    /// Tells whether a node is one the shared state does not use right now (a replica, a dead primary that a failover
    /// replaced, back as a replica): its lost connection is no outage.
    /// </param>
    public async Task<IConnectionMultiplexer?> ConnectAsync(Action synchronize, Func<System.Net.EndPoint?, bool> isSpare)
    {
        IConnectionMultiplexer multiplexer;
        try
        {
            multiplexer = await _connecting.ConfigureAwait(false);
        }
        catch (Exception e)
        {
            // With AbortOnConnectFail=false this is rare (e.g. an unresolvable name): the store stays local for good.
            ReportLastingFailure(e);
            return null;
        }

        lock (_gate)
        {
            if (!_disposed)
            {
                _synchronize = synchronize;
                _isSpare = isSpare;
                multiplexer.ConnectionFailed += OnConnectionFailed;
                multiplexer.ConnectionRestored += OnConnectionRestored;
                multiplexer.ConfigurationChanged += OnConfigurationChanged;
                Volatile.Write(ref _multiplexer, multiplexer);
                return multiplexer;
            }
        }

        // Disposed while connecting: nobody else will release it.
        if (_ownsConnection)
        {
            await multiplexer.DisposeAsync().ConfigureAwait(false);
        }

        return null;
    }

    /// <summary>
    /// Returns the multiplexer when the shared state may be written or read now: connected, and no split — without a
    /// cluster, two connected servers saying they are primaries (an old primary back before Sentinel made it a replica),
    /// where StackExchange.Redis may send the write to the node whose data is about to be replaced. Otherwise returns
    /// <see langword="null"/>, and the caller keeps what it would write for the synchronization to publish. A shard without
    /// a primary does not stop the others: a write to it fails, and that failure is reported.
    /// </summary>
    public IConnectionMultiplexer? Writable()
    {
        if (Multiplexer is not { } multiplexer)
        {
            // Still connecting: the start synchronizes.
            return null;
        }

        if (!multiplexer.IsConnected)
        {
            ReportFailure(null);
            return null;
        }

        if (IsSplit(multiplexer))
        {
            // No failure yet: the synchronization waits for the returning node to become a replica, then publishes.
            BeginUnshared();
            return null;
        }

        return multiplexer;
    }

    /// <summary>
    /// Reports a failure (a lost connection, a failed command or a synchronization that could not share the state): it
    /// makes the state unshared and requests a synchronization, and it is the outage's one warning when the failures have
    /// gone on for <see cref="OutageAfter"/>; the others are only counted. A store that has never shared its state and is
    /// connected only to replicas says so instead: the one warning names them.
    /// </summary>
    public void ReportFailure(Exception? exception)
    {
        if (IsStaleRouting(exception))
        {
            // Redis answers; the multiplexer has yet to elect the primary it reaches: no failure, for a while.
            BeginUnshared();
            return;
        }

        Report(exception, OnlyReplicasBeforeFirstShare(), confirmed: false);
    }

    /// <summary>
    /// Reports a failure that is an outage at once, because it has lasted already: the connection could not be made
    /// (its own connect timeout has passed), or a caller saw Redis miss a run of deadlines.
    /// </summary>
    public void ReportLastingFailure(Exception? exception) => Report(exception, OnlyReplicasBeforeFirstShare(), confirmed: true);

    /// <summary>
    /// Returns whether StackExchange.Redis found no connection to send a command to although every slot has a connected,
    /// writable primary: after a split it still prefers the old primary it elected, whose connections Sentinel closed
    /// when it made it a replica, until it elects again (when that node reconnects, up to seconds later, or when the
    /// roles are checked). For <see cref="RoutingGrace"/> that is no failure.
    /// </summary>
    private bool IsStaleRouting(Exception? exception)
    {
        if (exception is not RedisConnectionException { FailureType: ConnectionFailureType.UnableToResolvePhysicalConnection }
            || Multiplexer is not { } multiplexer
            || UnsharedFor >= RoutingGrace)
        {
            return false;
        }

        try
        {
            return RedisTopology.Of(multiplexer).IsComplete;
        }
        catch (Exception e) when (e is RedisException or ObjectDisposedException)
        {
            return false;
        }
    }

    private static bool IsSplit(IConnectionMultiplexer multiplexer)
    {
        try
        {
            return RedisTopology.Of(multiplexer).IsSplit;
        }
        catch (Exception e) when (e is RedisException or ObjectDisposedException)
        {
            return false;
        }
    }

    /// <summary>Makes the state unshared, without a failure: nothing is written until a synchronization shares it.</summary>
    private void BeginUnshared()
    {
        Action? synchronize;
        lock (_gate)
        {
            _failures++;
            if (_unshared)
            {
                return;
            }

            _unshared = true;
            if (_everShared)
            {
                _unsharedSince = Environment.TickCount64;
            }

            synchronize = _synchronize;
        }

        synchronize?.Invoke();
    }

    private IReadOnlyList<System.Net.EndPoint>? OnlyReplicasBeforeFirstShare()
        => Volatile.Read(ref _everShared) || Multiplexer is not { } multiplexer ? null : RedisTopology.Of(multiplexer).OnlyReplicas;

    /// <summary>
    /// Reports that the only servers connected are read-only replicas: warns once per outage, naming them and the likely
    /// cause, and counts it as any failure.
    /// </summary>
    public void ReportOnlyReplicas(IReadOnlyList<System.Net.EndPoint> replicas) => Report(null, replicas, confirmed: false);

    /// <summary>
    /// Reports a connection that is not ready (a primary or the subscription not connected): a failure, once the state
    /// was shared or a connection failed; before that the start is still under way, which is no outage to warn about
    /// (a loaded machine can take a moment to open the subscription). It is counted either way, so a synchronization
    /// that began before it does not declare the state shared.
    /// </summary>
    public void ReportNotReady()
    {
        lock (_gate)
        {
            if (!_started)
            {
                _failures++;
                return;
            }
        }

        ReportFailure(null);
    }

    /// <summary>
    /// Ends the outage after a complete synchronization, unless a failure was reported since it began.
    /// </summary>
    /// <param name="failuresAtStart">The <see cref="Failures"/> read when the synchronization began.</param>
    /// <param name="loaded">How many deadlines the synchronization loaded.</param>
    /// <param name="published">How many deadlines learned during the outage it published.</param>
    /// <param name="pinsPublished">How many affinity pins created during the outage it published.</param>
    /// <returns><see langword="true"/> when the state is shared now.</returns>
    public bool TryEndOutage(long failuresAtStart, int loaded, int published, int pinsPublished)
    {
        bool ended;
        lock (_gate)
        {
            if (_failures != failuresAtStart)
            {
                return false;
            }

            ended = _inOutage;
            _unshared = false;
            _inOutage = false;
            _firstFailure = null;
            _failingSince = null;
            _notAStall = false;
            _started = true;
            _replicaReported = false;
            Volatile.Write(ref _everShared, true);
        }

        if (ended)
        {
            Log.RedisAvailableAgain(_logger, loaded, published, pinsPublished);
        }

        return true;
    }

    /// <summary>
    /// Counts a failure and applies the one rule: failures are an outage once the state has stayed unshared for
    /// <see cref="OutageAfter"/> since the first (unless that was a lone timeout) — checked then, and on every failure
    /// reported later.
    /// </summary>
    /// <param name="exception">What failed, if an exception says it.</param>
    /// <param name="onlyReplicas">The replicas, when they are all that is connected: the warning names them.</param>
    /// <param name="confirmed">Whether the failure is an outage at once, however recent the first one.</param>
    private void Report(Exception? exception, IReadOnlyList<System.Net.EndPoint>? onlyReplicas, bool confirmed)
    {
        bool firstFailure;
        bool declared;
        long failingSince;
        Action? synchronize;
        lock (_gate)
        {
            var now = Environment.TickCount64;
            _failures++;
            _started = true;
            firstFailure = _failingSince is null;
            // A timeout alone may be the client's own stall (StackExchange.Redis blocks threads while Sentinel
            // reconfigures it); a lost connection, a refused command or a second failure is not.
            _notAStall |= !firstFailure || exception is not TimeoutException;
            failingSince = _failingSince ??= now;
            if (!_unshared)
            {
                _unshared = true;
                if (_everShared)
                {
                    _unsharedSince = now;
                }
            }

            _firstFailure ??= exception;

            // Before the first share, the time since the start counts.
            var failingFor = now - (_everShared ? failingSince : Math.Min(failingSince, _unsharedSince));
            declared = confirmed || failingFor >= (long)OutageAfter.TotalMilliseconds;
            synchronize = _synchronize;
        }

        var began = declared && Declare(failingSince, onlyReplicas);
        if (firstFailure && !declared)
        {
            _ = DeclareIfStillFailingAsync(failingSince);
        }

        if (firstFailure || began)
        {
            // The synchronization, not the requests, finds out whether the state can be shared (again).
            synchronize?.Invoke();
        }
    }

    /// <summary>
    /// Declares the outage <see cref="OutageAfter"/> after its first failure, unless that failure was a lone timeout
    /// (a command that timed out while StackExchange.Redis stalled): that waits for the synchronization it requested,
    /// whose own failure, if any, declares it.
    /// </summary>
    private async Task DeclareIfStillFailingAsync(long failingSince)
    {
        // Real time, not the store's TimeProvider: this judges the network, it measures no deadline.
        await Task.Delay(OutageAfter).ConfigureAwait(false);
        lock (_gate)
        {
            if (!_notAStall)
            {
                return;
            }
        }

        _ = Declare(failingSince, OnlyReplicasBeforeFirstShare());
    }

    /// <summary>
    /// Declares the outage that began with the failure at <paramref name="failingSince"/>, unless the state was shared
    /// since: warns once (naming the replicas, when they are all a store that never shared its state reaches).
    /// </summary>
    /// <returns><see langword="true"/> when this call began the outage.</returns>
    private bool Declare(long failingSince, IReadOnlyList<System.Net.EndPoint>? onlyReplicas)
    {
        bool began;
        bool warnOfReplicas;
        Exception? cause;
        lock (_gate)
        {
            if (_disposed || _failingSince != failingSince)
            {
                return false;
            }

            began = !_inOutage;
            _inOutage = true;
            warnOfReplicas = onlyReplicas is { Count: > 0 } && !_replicaReported;
            _replicaReported |= warnOfReplicas;
            cause = _firstFailure;
        }

        if (warnOfReplicas)
        {
            Log.OnlyReplicas(_logger, string.Join(", ", onlyReplicas!.Select(EndPointCollection.ToString)));
        }
        else if (began)
        {
            Log.RedisUnavailable(_logger, cause);
        }

        _firstOutage.TrySetResult();
        return began;
    }

    /// <summary>Unhooks the events and closes an owned connection synchronously; never waits on asynchronous work.</summary>
    public void Dispose()
    {
        if (TakeForDisposal() is { } multiplexer && _ownsConnection)
        {
            multiplexer.Dispose();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (TakeForDisposal() is { } multiplexer && _ownsConnection)
        {
            await multiplexer.DisposeAsync().ConfigureAwait(false);
        }
    }

    private IConnectionMultiplexer? TakeForDisposal()
    {
        IConnectionMultiplexer? multiplexer;
        lock (_gate)
        {
            if (_disposed)
            {
                return null;
            }

            _disposed = true;
            multiplexer = _multiplexer;
        }

        // Still connecting: the background start releases the connection when it completes.
        if (multiplexer is not null)
        {
            multiplexer.ConnectionFailed -= OnConnectionFailed;
            multiplexer.ConnectionRestored -= OnConnectionRestored;
            multiplexer.ConfigurationChanged -= OnConfigurationChanged;
        }

        return multiplexer;
    }

    private void OnConnectionFailed(object? sender, ConnectionFailedEventArgs args)
    {
        if (_isSpare?.Invoke(args.EndPoint) != true)
        {
            ReportFailure(args.Exception);
        }
    }

    private void OnConnectionRestored(object? sender, ConnectionFailedEventArgs args)
    {
        _synchronize?.Invoke();
        Interlocked.Increment(ref _restorations);
    }

    private void OnConfigurationChanged(object? sender, EndPointEventArgs args) => _synchronize?.Invoke();

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning,
            "Redis is unreachable: backend throttle state and affinity pins are no longer shared and are kept locally until Redis returns. " +
            "Requests are not affected, except that ids created on other replicas meanwhile are routed normally.")]
        public static partial void RedisUnavailable(ILogger logger, Exception? exception);

        [LoggerMessage(2, LogLevel.Information,
            "Redis is reachable again: throttle state is shared again ({Loaded} deadlines loaded, {Published} deadlines learned meanwhile published, " +
            "{PinsPublished} affinity pins created meanwhile published).")]
        public static partial void RedisAvailableAgain(ILogger logger, int loaded, int published, int pinsPublished);

        [LoggerMessage(6, LogLevel.Warning,
            "Redis at {Endpoints} is a read-only replica, and no writable primary is connected: throttle state and affinity pins are kept " +
            "locally. The likely cause is a fixed address whose primary failed over: connect through Sentinel (serviceName=…) or the " +
            "managed service's DNS name, which follow the primary. Requests are not affected.")]
        public static partial void OnlyReplicas(ILogger logger, string endpoints);
    }
}
