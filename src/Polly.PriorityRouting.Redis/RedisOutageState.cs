using System.Net;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis;

/// <summary>
/// Whether the store's state is shared right now — shared, unshared, or an outage — and the one rule that turns
/// reported failures into one warning per outage, and a complete synchronization into "shared again".
/// </summary>
/// <remarks>
/// Every failure — a connection lost (unless to a node the state does not use), a command that fails or times out, a
/// synchronization that cannot share the state — is <see cref="ReportFailure">reported</see> here, and one rule decides
/// what it means: the state is unshared from the first failure until a synchronization completes with no failure
/// reported since it began, and that is an outage, warned of once, when the state is still unshared
/// <see cref="OutageAfter"/> after the first failure (after a lone timeout, only if the synchronization then fails
/// too). A command that fails or stalls while StackExchange.Redis reconfigures (a returning old primary, the
/// connections Sentinel closes) is therefore no outage: the synchronization it requests shares the state again,
/// publishes what was kept meanwhile, and nothing is logged.
/// </remarks>
internal sealed partial class RedisOutageState
{
    /// <summary>
    /// How long the state must stay unshared after a failure before it is an outage: a failed synchronization is retried
    /// after half a second, and a failover's one failed command is then repaired; a failover itself takes seconds.
    /// </summary>
    private static readonly TimeSpan OutageAfter = TimeSpan.FromSeconds(1);

    /// <summary>How long a multiplexer that cannot route to the primary it is connected to is waited for (<see cref="IsStaleRouting"/>).</summary>
    private static readonly TimeSpan RoutingGrace = TimeSpan.FromSeconds(15);

    private readonly Func<RedisTopology?> _topology;
    private readonly Action _synchronize;
    private readonly ILogger _logger;

    private readonly TaskCompletionSource _firstOutage = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Guards the fields below.</summary>
    private readonly object _gate = new();

    /// <summary>
    /// Whether the state is shared, and if not, why. The store starts <see cref="Sharing.Shared"/>: nothing is withheld
    /// from Redis before a failure (<see cref="_everShared"/> tells the start apart).
    /// </summary>
    private Sharing _sharing = Sharing.Shared;

    /// <summary>Whether a synchronization has ever shared the state; also read without the gate.</summary>
    private bool _everShared;

    /// <summary>When the state was last unshared, or when the store began if it was never shared.</summary>
    private long _unsharedSince = Environment.TickCount64;

    /// <summary>How many failures were reported (<see cref="Failures"/>).</summary>
    private long _failures;

    /// <summary>Whether the store is disposed: failures are still counted and the state still changes, but no outage is declared.</summary>
    private bool _stopped;

    // The failures since the state was last shared: they mean something only while Failing or in an Outage, and the
    // next first failure sets them anew.

    /// <summary>When the first of the failures was reported: it tells a later declaration which failures it is for.</summary>
    private long _failingSince;

    /// <summary>The first exception among the failures: the outage's warning carries it.</summary>
    private Exception? _firstFailure;

    /// <summary>Whether the failures are more than a lone timeout, which may be the client's own stall.</summary>
    private bool _notAStall;

    /// <summary>Whether the warning named the replicas already: it does so once per outage.</summary>
    private bool _replicasWarnedOf;

    /// <summary>Whether the state is shared, and if not, why.</summary>
    private enum Sharing
    {
        /// <summary>
        /// Shared: writes go to Redis. A fresh store starts here too, before its first synchronization
        /// (<see cref="_everShared"/> tells the two apart).
        /// </summary>
        Shared,

        /// <summary>Unshared without a failure (<see cref="BeginUnshared"/>): nothing is written until a synchronization shares it.</summary>
        Unshared,

        /// <summary>Failures reported, not yet for <see cref="OutageAfter"/>: unshared, and not yet warned of.</summary>
        Failing,

        /// <summary>The failures lasted: an outage, warned of once.</summary>
        Outage,
    }

    /// <param name="topology">What the multiplexer is connected to, or <see langword="null"/> while it connects.</param>
    /// <param name="synchronize">Requests a synchronization, which finds out whether the state can be shared (again).</param>
    /// <param name="logger">Logs the outage's one warning and "shared again".</param>
    public RedisOutageState(Func<RedisTopology?> topology, Action synchronize, ILogger logger)
    {
        _topology = topology;
        _synchronize = synchronize;
        _logger = logger;
    }

    /// <summary>Gets whether an outage was declared (and not yet ended).</summary>
    public bool IsInOutage
    {
        get
        {
            lock (_gate)
            {
                return _sharing == Sharing.Outage;
            }
        }
    }

    /// <summary>
    /// Gets whether the state is unshared: a failure was reported since it was last shared (an outage, or failures not yet
    /// long enough to be one), or it was unshared without one (<see cref="BeginUnshared"/>). The synchronization runs
    /// until it ends.
    /// </summary>
    public bool IsUnshared
    {
        get
        {
            lock (_gate)
            {
                return _sharing != Sharing.Shared;
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

    /// <summary>
    /// Gets how long the state has not been shared: since the store began, or since it last left <see cref="Sharing.Shared"/>
    /// (a first failure, or <see cref="BeginUnshared"/>).
    /// </summary>
    public TimeSpan UnsharedFor
    {
        get
        {
            lock (_gate)
            {
                return _sharing != Sharing.Shared || !_everShared ? TimeSpan.FromMilliseconds(Environment.TickCount64 - _unsharedSince) : TimeSpan.Zero;
            }
        }
    }

    /// <summary>Gets whether failures are being reported (an outage or not yet); callers hold the gate.</summary>
    private bool IsFailing => _sharing is Sharing.Failing or Sharing.Outage;

    /// <summary>
    /// Gets whether the start is over: the state was shared, or a failure was reported (which only sharing it ends);
    /// callers hold the gate.
    /// </summary>
    private bool HasStarted => _everShared || IsFailing;

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
    /// Reports that the only servers connected are read-only replicas: warns once per outage, naming them and the likely
    /// cause, and counts it as any failure.
    /// </summary>
    public void ReportOnlyReplicas(IReadOnlyList<EndPoint> replicas) => Report(null, replicas, confirmed: false);

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
            if (!HasStarted)
            {
                _failures++;
                return;
            }
        }

        ReportFailure(null);
    }

    /// <summary>Makes the state unshared, without a failure: nothing is written until a synchronization shares it.</summary>
    public void BeginUnshared()
    {
        lock (_gate)
        {
            _failures++;
            if (_sharing != Sharing.Shared)
            {
                return;
            }

            Unshare(Sharing.Unshared, Environment.TickCount64);
        }

        _synchronize();
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

            ended = _sharing == Sharing.Outage;
            _sharing = Sharing.Shared;
            _firstFailure = null;
            _notAStall = false;
            _replicasWarnedOf = false;
            Volatile.Write(ref _everShared, true);
        }

        if (ended)
        {
            Log.RedisAvailableAgain(_logger, loaded, published, pinsPublished);
        }

        return true;
    }

    /// <summary>Declares no outage from now on: the store is disposed.</summary>
    public void Stop()
    {
        lock (_gate)
        {
            _stopped = true;
        }
    }

    /// <summary>
    /// Returns whether StackExchange.Redis found no connection to send a command to although every slot has a connected,
    /// writable primary: after a split it still prefers the old primary it elected, whose connections Sentinel closed
    /// when it made it a replica, until it elects again (when that node reconnects, up to seconds later, or when the
    /// roles are checked). For <see cref="RoutingGrace"/> that is no failure.
    /// </summary>
    private bool IsStaleRouting(Exception? exception)
    {
        if (exception is not RedisConnectionException { FailureType: ConnectionFailureType.UnableToResolvePhysicalConnection }
            || UnsharedFor >= RoutingGrace)
        {
            return false;
        }

        try
        {
            return _topology() is { IsComplete: true };
        }
        catch (Exception e) when (e is RedisException or ObjectDisposedException)
        {
            return false;
        }
    }

    private IReadOnlyList<EndPoint>? OnlyReplicasBeforeFirstShare()
        => Volatile.Read(ref _everShared) ? null : _topology()?.OnlyReplicas;

    /// <summary>Moves the state to <paramref name="next"/>, an unshared one, at <paramref name="now"/>; callers hold the gate.</summary>
    private void Unshare(Sharing next, long now)
    {
        // Before the first share, the state has been unshared since the start.
        if (_sharing == Sharing.Shared && _everShared)
        {
            _unsharedSince = now;
        }

        _sharing = next;
    }

    /// <summary>
    /// Counts a failure and applies the one rule: failures are an outage once the state has stayed unshared for
    /// <see cref="OutageAfter"/> since the first (unless that was a lone timeout) — checked then, and on every failure
    /// reported later.
    /// </summary>
    /// <param name="exception">What failed, if an exception says it.</param>
    /// <param name="onlyReplicas">The replicas, when they are all that is connected: the warning names them.</param>
    /// <param name="confirmed">Whether the failure is an outage at once, however recent the first one.</param>
    private void Report(Exception? exception, IReadOnlyList<EndPoint>? onlyReplicas, bool confirmed)
    {
        bool firstFailure;
        bool declared;
        long failingSince;
        lock (_gate)
        {
            var now = Environment.TickCount64;
            _failures++;
            firstFailure = !IsFailing;
            // A timeout alone may be the client's own stall (StackExchange.Redis blocks threads while Sentinel
            // reconfigures it); a lost connection, a refused command or a second failure is not.
            _notAStall |= !firstFailure || exception is not TimeoutException;
            if (firstFailure)
            {
                Unshare(Sharing.Failing, now);
                _failingSince = now;
            }

            failingSince = _failingSince;
            _firstFailure ??= exception;

            // Before the first share, the time since the start counts.
            var failingFor = now - (_everShared ? failingSince : Math.Min(failingSince, _unsharedSince));
            declared = confirmed || failingFor >= (long)OutageAfter.TotalMilliseconds;
        }

        var began = declared && Declare(failingSince, onlyReplicas);
        if (firstFailure && !declared)
        {
            _ = DeclareIfStillFailingAsync(failingSince);
        }

        if (firstFailure || began)
        {
            // The synchronization, not the requests, finds out whether the state can be shared (again).
            _synchronize();
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
    private bool Declare(long failingSince, IReadOnlyList<EndPoint>? onlyReplicas)
    {
        bool began;
        bool warnOfReplicas;
        Exception? cause;
        lock (_gate)
        {
            if (_stopped || !IsFailing || _failingSince != failingSince)
            {
                return false;
            }

            began = _sharing != Sharing.Outage;
            _sharing = Sharing.Outage;
            warnOfReplicas = onlyReplicas is { Count: > 0 } && !_replicasWarnedOf;
            _replicasWarnedOf |= warnOfReplicas;
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
