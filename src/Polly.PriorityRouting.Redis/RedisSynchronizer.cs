using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis;

/// <summary>
/// Keeps the mirror in step with Redis: subscribes to the channel, loads the shared state, and publishes what this
/// replica learned while Redis was unreachable (throttle marks and affinity pins) — once per start or recovery, however
/// many events ask for it.
/// </summary>
/// <remarks>
/// <para>
/// Every reason to synchronize (the start, each restored connection — one per connection type and per endpoint —, a
/// configuration change, the start of an outage, a write that succeeds during an outage, a retry) only
/// <see cref="Request">requests</see> it. One pass runs at a time, and the
/// requests made meanwhile make one more pass, not one each. A pass does nothing unless the state needs it (before the
/// first synchronization, or during an outage), and loads nothing until every slot has a connected, writable primary
/// (<see cref="RedisTopology"/>; a dead node that a failover replaced does not count) and the subscription has carried
/// the pass's own echo: a pass that ran when the first of several connections came back would load a state that the
/// next restoration must load again, and a subscription still on a node that a failover left would miss marks.
/// </para>
/// <para>
/// A pass that cannot complete is tried again after a delay that doubles from 0.5 to 2 seconds, so that an outage
/// never outlives Redis's for want of an event (a failover that only replaces a node, a hung Redis that answers again).
/// </para>
/// </remarks>
internal sealed partial class RedisSynchronizer
{
    private static readonly TimeSpan FirstRetryDelay = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan LongestRetryDelay = TimeSpan.FromSeconds(2);

    // How long a pass waits for its own echo to come back through the subscription.
    private static readonly TimeSpan EchoTimeout = TimeSpan.FromSeconds(2);

    // How often, at most, StackExchange.Redis is asked to check the servers' roles again.
    private static readonly TimeSpan RoleCheckInterval = TimeSpan.FromSeconds(2);

    // How long a store connected only to replicas waits for a promotion before it warns: a failover takes seconds, and
    // meanwhile StackExchange.Redis may still send writes to the replica (READONLY), which proves nothing.
    private static readonly TimeSpan ReplicaGrace = TimeSpan.FromSeconds(10);

    // How long two connected primaries (a failed-over primary back as one) are waited out before they are an outage:
    // Sentinel makes the returning node a replica some 10 s after it answers. Nothing is written meanwhile.
    private static readonly TimeSpan SplitGrace = TimeSpan.FromSeconds(30);

    private readonly RedisConnection _connection;
    private readonly RedisStoreLayout _layout;
    private readonly LocalMirror _mirror;
    private readonly UnpublishedMarks _unpublished;
    private readonly UnpublishedPins _unpublishedPins;
    private readonly RedisStateLoader _loader;
    private readonly RedisMarkWriter _writer;
    private readonly RedisBudgetChannel _budgets;
    private readonly string _instanceId;
    private readonly ILogger _logger;
    private readonly CancellationToken _disposing;
    private readonly Action<RedisChannel, RedisValue> _onMessage;
    private readonly TaskCompletionSource _firstSynchronization = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private int _requested;
    private int _running;
    private int _subscribed;
    private int _retryScheduled;
    private int _passes;
    private TimeSpan _retryDelay = FirstRetryDelay;
    private PendingEcho? _echo;
    private long _nextRoleCheckAt;

    public RedisSynchronizer(
        RedisConnection connection,
        RedisStoreLayout layout,
        LocalMirror mirror,
        UnpublishedMarks unpublished,
        UnpublishedPins unpublishedPins,
        RedisMarkWriter writer,
        RedisBudgetChannel budgets,
        string instanceId,
        ILogger logger,
        CancellationToken disposing)
    {
        _connection = connection;
        _layout = layout;
        _mirror = mirror;
        _unpublished = unpublished;
        _unpublishedPins = unpublishedPins;
        _writer = writer;
        _budgets = budgets;
        _instanceId = instanceId;
        _logger = logger;
        _disposing = disposing;
        _loader = new RedisStateLoader(layout, mirror, logger);
        _onMessage = OnMessage;
    }

    /// <summary>Gets a task that completes once the store has subscribed and loaded the shared state for the first time.</summary>
    public Task FirstSynchronization => _firstSynchronization.Task;

    /// <summary>Gets whether a pass runs or is about to (a test hook).</summary>
    public bool IsSynchronizing => Volatile.Read(ref _running) == 1;

    /// <summary>Gets how many passes ended, complete or not (a test hook).</summary>
    public int Passes => Volatile.Read(ref _passes);

    /// <summary>Gets how many loads began (a test hook).</summary>
    public int LoadCount => _loader.LoadCount;

    private bool NeedsSynchronization => _connection.IsUnshared || !_firstSynchronization.Task.IsCompleted;

    /// <summary>
    /// Asks for a synchronization; returns at once. Requests made while a pass runs make one more pass.
    /// </summary>
    public void Request()
    {
        Volatile.Write(ref _requested, 1);
        if (Interlocked.CompareExchange(ref _running, 1, 0) == 0)
        {
            // Never on the caller's thread: it may be StackExchange.Redis's event thread, or a request's.
            _ = Task.Run(RunAsync);
        }
    }

    /// <summary>
    /// Returns whether a node is one the shared state does not use: every slot has a connected, writable primary other
    /// than it, and it does not carry the subscription. A failover's old primary that returns is one, both while it still
    /// says it is a primary and once Sentinel has made it a replica and closed its clients' connections.
    /// </summary>
    public bool IsSpare(System.Net.EndPoint? endPoint)
    {
        if (endPoint is null || _connection.Multiplexer is not { } multiplexer)
        {
            return false;
        }

        try
        {
            return RedisTopology.Of(multiplexer, without: endPoint).IsComplete
                && !Equals(multiplexer.GetSubscriber().SubscribedEndpoint(_layout.Channel), endPoint);
        }
        catch (Exception e) when (e is RedisException or ObjectDisposedException)
        {
            return false;
        }
    }

    /// <summary>Unsubscribes without waiting (disposal).</summary>
    public void Unsubscribe()
    {
        try
        {
            _connection.Multiplexer?.GetSubscriber().Unsubscribe(_layout.Channel, _onMessage, CommandFlags.FireAndForget);
        }
        catch (Exception e) when (e is RedisException or ObjectDisposedException)
        {
            // Nothing to unsubscribe from when Redis is gone.
        }
    }

    private async Task RunAsync()
    {
        while (true)
        {
            while (Interlocked.Exchange(ref _requested, 0) == 1 && !_disposing.IsCancellationRequested)
            {
                await PassAsync().ConfigureAwait(false);
            }

            Volatile.Write(ref _running, 0);

            // A request made between the last check and the line above found the pass still running: serve it.
            if (Volatile.Read(ref _requested) == 0 || Interlocked.CompareExchange(ref _running, 1, 0) != 0)
            {
                return;
            }
        }
    }

    private async Task PassAsync()
    {
        try
        {
            if (_connection.Multiplexer is not { } multiplexer || !NeedsSynchronization)
            {
                return;
            }

            if (await SynchronizeAsync(multiplexer).ConfigureAwait(false))
            {
                _retryDelay = FirstRetryDelay;
            }
            else
            {
                // No event is certain to come: a failover may only replace a node, a hung Redis may only answer again.
                ScheduleRetry();
            }
        }
        catch (Exception e) when (!_disposing.IsCancellationRequested)
        {
            // Still unreachable or half-connected: the next restoration, write or retry tries again.
            _connection.ReportFailure(e);
            ScheduleRetry();
        }
        catch (Exception)
        {
            // Disposed meanwhile: nothing to report.
        }
        finally
        {
            Interlocked.Increment(ref _passes);
        }
    }

    /// <summary>
    /// Once every slot has a connected, writable primary: subscribes if needed, proves the subscription live with an echo,
    /// loads the state and publishes what was learned meanwhile. The echo comes first, so that nothing published during
    /// the load is missed: every mark published after it is received, every mark before it is in Redis.
    /// </summary>
    /// <returns><see langword="true"/> when the state is shared now.</returns>
    private async Task<bool> SynchronizeAsync(IConnectionMultiplexer multiplexer)
    {
        if (await WritablePrimariesAsync(multiplexer).ConfigureAwait(false) is not { } primaries)
        {
            return false;
        }

        // Counted from here: a failure reported while the roles were checked again (which can take a connect timeout)
        // came before the servers were found complete, and does not make this pass's load incomplete.
        var failuresAtStart = _connection.Failures;

        var subscriber = multiplexer.GetSubscriber();
        await EnsureSubscribedAsync(subscriber).ConfigureAwait(false);
        if (!await EchoAsync(subscriber).ConfigureAwait(false))
        {
            // The subscription is on a node that no longer hears the primary (a failover): subscribe again next pass.
            Volatile.Write(ref _subscribed, 0);
            _connection.ReportNotReady();
            return false;
        }

        var loaded = await _loader.LoadAsync(multiplexer, primaries, _disposing).ConfigureAwait(false);
        var published = await PublishUnpublishedAsync(multiplexer).ConfigureAwait(false);
        var pinsPublished = await PublishUnpublishedPinsAsync(multiplexer).ConfigureAwait(false);
        if (!_connection.TryEndOutage(failuresAtStart, loaded, published, pinsPublished))
        {
            return false;
        }

        _firstSynchronization.TrySetResult();
        return true;
    }

    /// <summary>
    /// Returns the connected, writable primaries that hold every slot, or <see langword="null"/> (reported) when some
    /// slot has none. When a server is connected but none is a writable primary, StackExchange.Redis is asked to check
    /// the roles again: a hand-made promotion is otherwise seen only at its next configuration check, a minute later.
    /// </summary>
    private async Task<IReadOnlyList<IServer>?> WritablePrimariesAsync(IConnectionMultiplexer multiplexer)
    {
        var topology = RedisTopology.Of(multiplexer);
        if (topology.IsComplete)
        {
            return topology.Primaries;
        }

        if (topology.AnyConnected && Environment.TickCount64 >= Volatile.Read(ref _nextRoleCheckAt))
        {
            // At most one check per interval: a check raises configuration events, which request passes of their own.
            Volatile.Write(ref _nextRoleCheckAt, Environment.TickCount64 + (long)RoleCheckInterval.TotalMilliseconds);
            await multiplexer.ConfigureAsync().ConfigureAwait(false);
            topology = RedisTopology.Of(multiplexer);
            if (topology.IsComplete)
            {
                return topology.Primaries;
            }
        }

        if (topology.IsSplit && _connection.UnsharedFor < SplitGrace)
        {
            // Not yet a failure: retried at a steady pace until the returning node is a replica, so that the pass that
            // follows a connection Sentinel closes then comes soon.
            _retryDelay = FirstRetryDelay;
            return null;
        }

        if (topology.OnlyReplicas is { Count: > 0 } replicas && _connection.UnsharedFor >= ReplicaGrace)
        {
            _connection.ReportOnlyReplicas(replicas);
        }
        else
        {
            // A shard that cannot be loaded: the state is not shared, whatever the other shards say.
            _connection.ReportNotReady();
        }

        return null;
    }

    private async Task EnsureSubscribedAsync(ISubscriber subscriber)
    {
        if (Volatile.Read(ref _subscribed) == 1)
        {
            // StackExchange.Redis itself subscribes again on every reconnection.
            return;
        }

        // A failed earlier attempt may have left the handler registered: never register it twice.
        await subscriber.UnsubscribeAsync(_layout.Channel, _onMessage).ConfigureAwait(false);
        await subscriber.SubscribeAsync(_layout.Channel, _onMessage).ConfigureAwait(false);
        Volatile.Write(ref _subscribed, 1);
    }

    /// <summary>
    /// Publishes an echo on the channel and waits, bounded, until this replica's own subscription receives it.
    /// </summary>
    private async Task<bool> EchoAsync(ISubscriber subscriber)
    {
        var token = Guid.NewGuid().ToString("N");
        var received = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _echo, new PendingEcho(token, received));
        await subscriber.PublishAsync(_layout.Channel, EchoMessage.Format(_instanceId, token)).ConfigureAwait(false);
        try
        {
            await received.Task.WaitAsync(EchoTimeout, _disposing).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    private async Task<int> PublishUnpublishedAsync(IConnectionMultiplexer multiplexer)
    {
        var marks = _unpublished.TakeActive(_mirror.Now);
        for (var i = 0; i < marks.Count; i++)
        {
            var (key, unavailability) = marks[i];
            var remaining = unavailability.Until - _mirror.Now;
            if (remaining <= TimeSpan.Zero)
            {
                continue;
            }

            try
            {
                await _writer.WriteAsync(multiplexer, key, _mirror.ToSharedMilliseconds(remaining), unavailability.Reason).ConfigureAwait(false);
            }
            catch
            {
                // This mark and those not yet written wait for the next pass.
                foreach (var (keptKey, kept) in marks.Skip(i))
                {
                    _unpublished.Keep(keptKey, kept, _mirror.Now);
                }

                throw;
            }
        }

        return marks.Count;
    }

    /// <summary>Writes the affinity pins created while Redis could not be written; a failure leaves the rest for the next pass.</summary>
    private Task<int> PublishUnpublishedPinsAsync(IConnectionMultiplexer multiplexer)
    {
        var database = multiplexer.GetDatabase();
        return _unpublishedPins.PublishAsync(
            (id, backend, timeToLive) => database.StringSetAsync(_layout.AffinityKeyOf(id), backend, timeToLive),
            id => database.KeyDeleteAsync(_layout.AffinityKeyOf(id)),
            () => _mirror.Now);
    }

    private void ScheduleRetry()
    {
        if (Interlocked.Exchange(ref _retryScheduled, 1) == 1)
        {
            return;
        }

        var delay = _retryDelay;
        _retryDelay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, LongestRetryDelay.Ticks));
        _ = Task.Run(async () =>
        {
            try
            {
                // Real time, not the store's TimeProvider: this paces network attempts, it measures no deadline.
                await Task.Delay(delay, _disposing).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            Volatile.Write(ref _retryScheduled, 0);
            Request();
        });
    }

    private void OnMessage(RedisChannel channel, RedisValue payload)
    {
        // Bounded before it is decoded: a stray publisher cannot make this replica read megabytes.
        var text = payload.IsNullOrEmpty || payload.Length() > ThrottleMessage.MaxLength * 4 ? null : (string?)payload;
        if (text is not null && EchoMessage.TryParse(text, out var sender, out var token))
        {
            if (sender == _instanceId && Volatile.Read(ref _echo) is { } echo && echo.Token == token)
            {
                echo.Received.TrySetResult();
            }

            return;
        }

        if (text is not null && BudgetMessage.IsBudgetMessage(text))
        {
            if (!_budgets.Receive(text))
            {
                Log.IgnoredMalformedMessage(_logger, channel.ToString());
            }

            return;
        }

        if (text is null || !ThrottleMessage.TryParse(text.AsSpan(), out var message))
        {
            Log.IgnoredMalformedMessage(_logger, channel.ToString());
            return;
        }

        if (message.Sender == _instanceId)
        {
            return;
        }

        // The writer sent the time left, not a moment: the deadline is set on this replica's own clock, bounded.
        _mirror.Adopt(message.Key, message.RemainingMilliseconds, message.Reason);
    }

    private sealed record PendingEcho(string Token, TaskCompletionSource Received);

    private static partial class Log
    {
        [LoggerMessage(3, LogLevel.Debug, "Ignored a malformed message on the channel {Channel}.")]
        public static partial void IgnoredMalformedMessage(ILogger logger, string channel);
    }
}
