using System.Collections.Concurrent;
using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis;

/// <summary>
/// Carries budget observations between the replicas on the store's channel (<see cref="BudgetMessage"/>): publishes this
/// replica's, at most one per backend per <see cref="PriorityRoutingRedisStoreOptions.BudgetPublishInterval"/>, hands the
/// others' to the budget view, and counts the replicas heard from.
/// </summary>
/// <remarks>
/// <para>
/// Publishing is off the request path and throttled: an observation only replaces the pending one of its key; the first
/// after a quiet interval is published at once, the following ones together at the end of the interval. The view's
/// counts only go down within a window, so the latest pending observation of a key is the one worth sending. Nothing is
/// kept for later: when Redis cannot be written the observations are dropped (a budget is stale within a window, and
/// every replica still has its own answers).
/// </para>
/// <para>
/// Bounded: at most <see cref="MaxPending"/> keys wait for publication and <see cref="MaxPeers"/> senders are counted;
/// what arrives is bounded by the message parser and by the view (its own key bound; resets at most
/// <see cref="PriorityRoutingRedisStoreOptions.MaxUnavailability"/> away).
/// </para>
/// </remarks>
internal sealed class RedisBudgetChannel
{
    public const int MaxPending = 4096;

    public const int MaxPeers = 1024;

    /// <summary>How long a replica counts as a peer after its last message.</summary>
    public static readonly TimeSpan PeerLifetime = TimeSpan.FromMinutes(1);

    private static readonly TimeSpan RecountInterval = TimeSpan.FromSeconds(1);

    private readonly RedisConnection _connection;
    private readonly RedisStoreLayout _layout;
    private readonly LocalMirror _mirror;
    private readonly string _instanceId;
    private readonly long _intervalMilliseconds;
    private readonly CancellationToken _disposing;
    private readonly ConcurrentDictionary<BackendStateKey, BackendBudgetObservation> _pending = new();
    private readonly Dictionary<string, DateTimeOffset> _peers = new(StringComparer.Ordinal);
    private Action<BackendStateKey, BackendBudgetObservation>? _subscriber;
    private int _pendingCount;
    private int _flushScheduled;
    private long _nextFlushAt;
    private int _peerCount;
    private long _nextRecountTicks;
    private long _published;
    private long _received;

    public RedisBudgetChannel(
        RedisConnection connection,
        RedisStoreLayout layout,
        LocalMirror mirror,
        string instanceId,
        TimeSpan publishInterval,
        CancellationToken disposing)
    {
        _connection = connection;
        _layout = layout;
        _mirror = mirror;
        _instanceId = instanceId;
        _intervalMilliseconds = (long)publishInterval.TotalMilliseconds;
        _disposing = disposing;
    }

    /// <summary>Gets how many other replicas published budgets within <see cref="PeerLifetime"/>.</summary>
    public int PeerCount
    {
        get
        {
            var now = _mirror.Now;
            if (now.UtcTicks >= Volatile.Read(ref _nextRecountTicks))
            {
                Recount(now);
            }

            return Volatile.Read(ref _peerCount);
        }
    }

    /// <summary>Gets how many keys wait for publication (a test hook).</summary>
    public int PendingCount => Volatile.Read(ref _pendingCount);

    /// <summary>Gets how many messages were published (a test hook).</summary>
    public long Published => Interlocked.Read(ref _published);

    /// <summary>Gets how many observations of other replicas were handed to the view (a test hook).</summary>
    public long Received => Interlocked.Read(ref _received);

    public void Subscribe(Action<BackendStateKey, BackendBudgetObservation> onObservation) => Volatile.Write(ref _subscriber, onObservation);

    /// <summary>Keeps the observation for the next publication; returns at once, never throws.</summary>
    public void Publish(BackendStateKey key, BackendBudgetObservation observation)
    {
        if (!StateKeyEncoding.CanEncode(key))
        {
            return;
        }

        // Update or add, never a blind set: a flush may take the key out between a check and a set, and a set would
        // then add it back without counting it (the count would drift low and a later flush not be scheduled).
        while (true)
        {
            if (_pending.TryGetValue(key, out var kept))
            {
                if (_pending.TryUpdate(key, observation, kept))
                {
                    break;
                }

                continue;
            }

            if (Volatile.Read(ref _pendingCount) >= MaxPending)
            {
                return;
            }

            if (_pending.TryAdd(key, observation))
            {
                Interlocked.Increment(ref _pendingCount);
                break;
            }
        }

        ScheduleFlush();
    }

    /// <summary>Reads a budget message from the channel; returns whether it was well-formed.</summary>
    public bool Receive(string payload)
    {
        if (!BudgetMessage.TryParse(payload.AsSpan(), out var message))
        {
            return false;
        }

        if (message.Sender == _instanceId)
        {
            return true;
        }

        var now = _mirror.Now;
        CountPeer(message.Sender, now);
        Volatile.Read(ref _subscriber)?.Invoke(message.Key, message.ToObservation(now, _mirror.MaxMilliseconds));
        Interlocked.Increment(ref _received);
        return true;
    }

    private void ScheduleFlush()
    {
        if (Interlocked.CompareExchange(ref _flushScheduled, 1, 0) != 0)
        {
            return;
        }

        // Real time, not the store's TimeProvider: this paces network writes, it measures no deadline.
        var delay = Math.Max(0, Volatile.Read(ref _nextFlushAt) - Environment.TickCount64);
        _ = Task.Run(() => FlushAsync(delay));
    }

    private async Task FlushAsync(long delayMilliseconds)
    {
        try
        {
            if (delayMilliseconds > 0)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(delayMilliseconds), _disposing).ConfigureAwait(false);
            }

            Volatile.Write(ref _nextFlushAt, Environment.TickCount64 + _intervalMilliseconds);
            await PublishPendingAsync().ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Disposed, or Redis failed mid-way: the observations are dropped; nobody awaits this task.
        }
        finally
        {
            Volatile.Write(ref _flushScheduled, 0);
        }

        // An observation kept while this flush ran: publish it at the end of the interval.
        if (Volatile.Read(ref _pendingCount) > 0 && !_disposing.IsCancellationRequested)
        {
            ScheduleFlush();
        }
    }

    private async Task PublishPendingAsync()
    {
        var multiplexer = _connection.Multiplexer is { IsConnected: true } connected && !_connection.Outage.IsInOutage ? connected : null;
        foreach (var (key, observation) in _pending)
        {
            if (!_pending.TryRemove(new KeyValuePair<BackendStateKey, BackendBudgetObservation>(key, observation)))
            {
                // Replaced meanwhile: the newer one is published by the next flush.
                continue;
            }

            Interlocked.Decrement(ref _pendingCount);
            if (multiplexer is null)
            {
                continue;
            }

            var message = BudgetMessage.From(_instanceId, key, observation, _mirror.Now, _mirror.MaxMilliseconds);
            await multiplexer.GetSubscriber().PublishAsync(_layout.Channel, message.Format()).ConfigureAwait(false);
            Interlocked.Increment(ref _published);
        }
    }

    private void CountPeer(string sender, DateTimeOffset now)
    {
        lock (_peers)
        {
            if (_peers.Count < MaxPeers || _peers.ContainsKey(sender))
            {
                _peers[sender] = now;
            }

            Volatile.Write(ref _peerCount, _peers.Count);
        }
    }

    private void Recount(DateTimeOffset now)
    {
        lock (_peers)
        {
            foreach (var (sender, lastHeard) in _peers)
            {
                if (now - lastHeard > PeerLifetime)
                {
                    _peers.Remove(sender);
                }
            }

            Volatile.Write(ref _peerCount, _peers.Count);
            Volatile.Write(ref _nextRecountTicks, now.UtcTicks + RecountInterval.Ticks);
        }
    }
}
