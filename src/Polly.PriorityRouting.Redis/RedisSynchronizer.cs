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
/// first synchronization, or while it is unshared), and loads nothing until every slot has exactly one connected,
/// writable primary (<see cref="RedisRoleCheck"/>; a dead node that a failover replaced does not count) and the
/// subscription has carried the pass's own echo (<see cref="RedisChannelListener"/>): a pass that ran when the first of
/// several connections came back would load a state that the next restoration must load again, and a subscription
/// still on a node that a failover left would miss marks.
/// </para>
/// <para>
/// A pass that cannot complete is tried again after a delay that doubles from 0.5 to 2 seconds (0.5 s while two nodes
/// say they are the primary), so that an outage never outlives Redis's for want of an event (a failover that only
/// replaces a node, a hung Redis that answers again).
/// </para>
/// </remarks>
internal sealed class RedisSynchronizer
{
    private static readonly TimeSpan FirstRetryDelay = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan LongestRetryDelay = TimeSpan.FromSeconds(2);

    private readonly RedisConnection _connection;
    private readonly RedisStoreLayout _layout;
    private readonly LocalMirror _mirror;
    private readonly UnpublishedMarks _unpublished;
    private readonly UnpublishedPins _unpublishedPins;
    private readonly RedisStateLoader _loader;
    private readonly RedisMarkWriter _writer;
    private readonly RedisRoleCheck _roles;
    private readonly RedisChannelListener _listener;
    private readonly CancellationToken _disposing;
    private readonly TaskCompletionSource _firstSynchronization = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private int _requested;
    private int _running;
    private int _retryScheduled;
    private int _passes;
    private TimeSpan _retryDelay = FirstRetryDelay;

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
        _disposing = disposing;
        _loader = new RedisStateLoader(layout, mirror, logger);
        _roles = new RedisRoleCheck(connection, layout.Channel);
        _listener = new RedisChannelListener(layout.Channel, mirror, budgets, instanceId, logger);
    }

    /// <summary>Gets a task that completes once the store has subscribed and loaded the shared state for the first time.</summary>
    public Task FirstSynchronization => _firstSynchronization.Task;

    /// <summary>Gets whether a pass runs or is about to (a test hook).</summary>
    public bool IsSynchronizing => Volatile.Read(ref _running) == 1;

    /// <summary>Gets how many passes ended, complete or not (a test hook).</summary>
    public int Passes => Volatile.Read(ref _passes);

    /// <summary>Gets how many loads began (a test hook).</summary>
    public int LoadCount => _loader.LoadCount;

    /// <summary>
    /// Gets a value indicating whether a pass has work: the state is not shared, or something kept for publication waits
    /// (a request that found the outage not yet ended kept it after this pass had published, before it ended the outage).
    /// </summary>
    private bool NeedsSynchronization
        => _connection.Outage.IsUnshared || !_firstSynchronization.Task.IsCompleted || _unpublished.Count > 0 || _unpublishedPins.Count > 0;

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

    /// <inheritdoc cref="RedisRoleCheck.IsSpare"/>
    public bool IsSpare(System.Net.EndPoint? endPoint) => _roles.IsSpare(endPoint);

    /// <summary>Unsubscribes without waiting (disposal).</summary>
    public void Unsubscribe() => _listener.Unsubscribe(_connection.Multiplexer);

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
            // Still unreachable, half-connected, or routed to a node that is gone: the next restoration, write or retry
            // tries again, after the roles are checked again.
            _roles.DoubtRouting();
            _connection.Outage.ReportFailure(e);
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
        var (writablePrimaries, waitingOutSplit) = await _roles.WritablePrimariesAsync(multiplexer).ConfigureAwait(false);
        if (writablePrimaries is not { } primaries)
        {
            if (waitingOutSplit)
            {
                // Retried at a steady pace until the returning node is a replica, so that the pass that follows the
                // connections Sentinel closes then comes soon.
                _retryDelay = FirstRetryDelay;
            }

            return false;
        }

        // Counted from here: a failure reported while the roles were checked again (which can take a connect timeout)
        // came before the servers were found complete, and does not make this pass's load incomplete.
        var failuresAtStart = _connection.Outage.Failures;

        var subscriber = multiplexer.GetSubscriber();
        await _listener.EnsureSubscribedAsync(subscriber).ConfigureAwait(false);
        if (!await _listener.EchoAsync(subscriber, _disposing).ConfigureAwait(false))
        {
            // The subscription is on a node that no longer hears the primary (a failover): subscribed again next pass.
            _roles.DoubtRouting();
            _connection.Outage.ReportNotReady();
            return false;
        }

        var loaded = await _loader.LoadAsync(multiplexer, primaries, _disposing).ConfigureAwait(false);
        var published = await PublishUnpublishedAsync(multiplexer).ConfigureAwait(false);
        var pinsPublished = await PublishUnpublishedPinsAsync(multiplexer).ConfigureAwait(false);
        if (!_connection.Outage.TryEndOutage(failuresAtStart, loaded, published, pinsPublished))
        {
            return false;
        }

        _firstSynchronization.TrySetResult();
        if (_unpublished.Count > 0 || _unpublishedPins.Count > 0)
        {
            // Kept by a request between this pass's publication and the end of the outage: one more pass publishes it
            // (else it would wait for the next outage).
            Volatile.Write(ref _requested, 1);
        }

        return true;
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

}
