using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis;

/// <summary>
/// An <see cref="IAffinityStore"/> shared by every replica connected to one Redis: each pin is one string key
/// (<see cref="RedisStoreLayout.AffinityKeyOf"/> → backend identity) that expires with the pin, plus a bounded local
/// copy. It shares the throttle store's connection, outage and synchronization.
/// </summary>
/// <remarks>
/// <para>
/// Requests without ids never touch it. A pin is written to Redis and awaited before the bytes that carry the new id
/// reach the caller, so a follow-up sent the instant the answer arrives, from any replica, finds it. A replica that has
/// not seen an id looks it up in Redis once (a <c>GET</c>) and keeps what it found locally. Both rules close the race
/// between replicas; either alone would leave a window (a lost write, or a replica that only reads locally).
/// </para>
/// <para>
/// Fail-open, as the throttle store, and a request is never held by Redis: a call waits at most
/// <see cref="PriorityRoutingRedisStoreOptions.AffinityTimeout"/> and never past the caller's cancellation; a late or
/// failed call declares the outage (to the one <see cref="RedisOutageState"/>, which warns once), and during an outage
/// nothing on the request path touches Redis: pins stay local, lookups answer from memory (an unknown id is then routed
/// normally). The pins that could not be written wait in <see cref="UnpublishedPins"/> (bounded) until the
/// <see cref="RedisSynchronizer"/> publishes them when Redis returns; a <c>DELETE</c> meanwhile forgets them.
/// </para>
/// </remarks>
internal sealed class RedisAffinityStore : IAffinityStore
{
    private readonly RedisConnection _connection;
    private readonly RedisSynchronizer _synchronizer;
    private readonly RedisStoreLayout _layout;
    private readonly UnpublishedPins _unpublished;
    private readonly InMemoryAffinityStore _local;
    private readonly TimeProvider _timeProvider;
    private readonly TimeSpan _timeout;
    private int _remoteLookups;

    public RedisAffinityStore(
        RedisConnection connection,
        RedisSynchronizer synchronizer,
        RedisStoreLayout layout,
        UnpublishedPins unpublished,
        TimeProvider timeProvider,
        TimeSpan timeout)
    {
        _connection = connection;
        _synchronizer = synchronizer;
        _layout = layout;
        _unpublished = unpublished;
        _timeProvider = timeProvider;
        _timeout = timeout;
        _local = new InMemoryAffinityStore(InMemoryAffinityStore.DefaultCapacity, InMemoryAffinityStore.DefaultStickyCapacity, timeProvider);
    }

    /// <summary>Gets the local copy (tests).</summary>
    internal InMemoryAffinityStore Local => _local;

    /// <summary>Gets the number of lookups that went to Redis (tests).</summary>
    internal int RemoteLookups => Volatile.Read(ref _remoteLookups);

    /// <summary>Gets the number of pins waiting for Redis (tests).</summary>
    internal int UnpublishedPinCount => _unpublished.Count;

    /// <inheritdoc/>
    public async ValueTask<string?> FindAsync(string id, CancellationToken cancellationToken)
    {
        if (_local.TryFind(id, out var backend))
        {
            return backend;
        }

        var found = await GetAsync(_layout.AffinityKeyOf(id), cancellationToken).ConfigureAwait(false);
        if (found is (var holder, var expiry))
        {
            _local.Pin(id, holder, expiry);
        }

        return found?.Backend;
    }

    /// <inheritdoc/>
    public async ValueTask PinAsync(string id, string backend, TimeSpan timeToLive, CancellationToken cancellationToken)
    {
        _local.Pin(id, backend, timeToLive);
        await SetAsync(_layout.AffinityKeyOf(id), backend, timeToLive, keepForPublication: id, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public async ValueTask RemoveAsync(string id, CancellationToken cancellationToken)
    {
        await _local.RemoveAsync(id, cancellationToken).ConfigureAwait(false);
        _unpublished.Forget(id);

        // During an outage, a pin Redis held from before stays there until it expires: it names the backend that
        // deleted the id, which answers 404 for it as any other would.
        if (_connection.WritableWhileShared() is { } multiplexer)
        {
            await WaitBoundedAsync(multiplexer.GetDatabase().KeyDeleteAsync(_layout.AffinityKeyOf(id)), onFailure: null, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc/>
    public async ValueTask<string?> FindStickyAsync(string key, CancellationToken cancellationToken)
    {
        if (await _local.FindStickyAsync(key, cancellationToken).ConfigureAwait(false) is { } backend)
        {
            return backend;
        }

        var found = await GetAsync(_layout.StickyKeyOf(key), cancellationToken).ConfigureAwait(false);
        if (found is (var holder, var expiry))
        {
            await _local.PinStickyAsync(key, holder, expiry, cancellationToken).ConfigureAwait(false);
        }

        return found?.Backend;
    }

    /// <inheritdoc/>
    public async ValueTask PinStickyAsync(string key, string backend, TimeSpan timeToLive, CancellationToken cancellationToken)
    {
        await _local.PinStickyAsync(key, backend, timeToLive, cancellationToken).ConfigureAwait(false);

        // Never kept for publication: the key's next successful request pins it again.
        await SetAsync(_layout.StickyKeyOf(key), backend, timeToLive, keepForPublication: null, cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask<(string Backend, TimeSpan Expiry)?> GetAsync(RedisKey key, CancellationToken cancellationToken)
    {
        if (_connection.WritableWhileShared() is not { } multiplexer)
        {
            return null;
        }

        Interlocked.Increment(ref _remoteLookups);
        var lookup = multiplexer.GetDatabase().StringGetWithExpiryAsync(key);
        if (!await WaitBoundedAsync(lookup, onFailure: null, cancellationToken).ConfigureAwait(false))
        {
            return null;
        }

        var found = await lookup.ConfigureAwait(false);
        return found.Value.IsNull || found.Expiry is not { } expiry || expiry <= TimeSpan.Zero ? null : ((string)found.Value!, expiry);
    }

    /// <summary>
    /// Writes a pin; when Redis cannot take it in time, keeps the id for publication (<paramref name="keepForPublication"/>:
    /// <see langword="null"/> for a soft key).
    /// </summary>
    private async ValueTask SetAsync(RedisKey key, string backend, TimeSpan timeToLive, string? keepForPublication, CancellationToken cancellationToken)
    {
        var expiresAt = _timeProvider.GetUtcNow() + timeToLive;
        Action? keep = keepForPublication is null ? null : () => _unpublished.Keep(keepForPublication, backend, expiresAt, _timeProvider.GetUtcNow());
        if (_connection.WritableWhileShared() is { } multiplexer)
        {
            await WaitBoundedAsync(multiplexer.GetDatabase().StringSetAsync(key, backend, timeToLive), keep, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            // Still connecting or in an outage: the synchronization that shares the state publishes what was kept. An
            // outage that ended meanwhile (after its pass published) has no pass left to publish it: one is asked for.
            keep?.Invoke();
            if (keep is not null && _connection.WritableWhileShared() is not null)
            {
                _synchronizer.Request();
            }
        }
    }

    /// <summary>
    /// Returns the multiplexer when a request may use it: no failure since the state was last shared (a hung Redis must
    /// hold no request after the first that waited for it, and the synchronization, not the requests, finds out when it
    /// answers again), and no split (<see cref="RedisConnection.Writable"/>).
    /// </summary>
    /// <summary>
    /// Waits for a Redis call at most the affinity timeout, and never past the caller's cancellation. A call that fails
    /// or is late runs <paramref name="onFailure"/> (which keeps a pin), then reports the outage; a caller's cancellation
    /// is thrown as such, and the abandoned call's outcome is still handled when it comes.
    /// </summary>
    /// <returns><see langword="true"/> when the call succeeded in time.</returns>
    private async ValueTask<bool> WaitBoundedAsync(Task call, Action? onFailure, CancellationToken cancellationToken)
    {
        try
        {
            // Real time, not the store's TimeProvider: this bounds a network call, it measures no deadline.
            await call.WaitAsync(_timeout, cancellationToken).ConfigureAwait(false);
            Succeeded();
            return true;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested && !call.IsCompleted)
        {
            _ = HandleLateAsync(call, onFailure);
            throw;
        }
        catch (Exception e)
        {
            // Kept before the outage is reported, so that the synchronization that ends it cannot miss the pin.
            onFailure?.Invoke();
            _connection.Outage.ReportFailure(e);
            if (!call.IsCompleted)
            {
                _ = HandleLateAsync(call, onFailure: null);
            }

            return false;
        }
    }

    /// <summary>Observes a call nobody waits for any more: a success may end an outage, a failure is one.</summary>
    private async Task HandleLateAsync(Task call, Action? onFailure)
    {
        try
        {
            await call.ConfigureAwait(false);
            Succeeded();
        }
        catch (Exception e)
        {
            onFailure?.Invoke();
            _connection.Outage.ReportFailure(e);
        }
    }

    private void Succeeded()
    {
        if (_connection.Outage.IsUnshared)
        {
            // Redis answered although the store believed it gone (e.g. after a timeout): synchronize, which publishes
            // what waits and ends the outage.
            _synchronizer.Request();
        }
    }
}
