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
/// Fail-open, as the throttle store: while Redis cannot be reached pins stay local, lookups answer from memory (an
/// unknown id is then routed normally), and the outage is reported to the one <see cref="RedisConnection"/>, which
/// warns once. The pins that could not be written wait in <see cref="UnpublishedPins"/> (bounded) until the
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
    private int _remoteLookups;

    public RedisAffinityStore(
        RedisConnection connection,
        RedisSynchronizer synchronizer,
        RedisStoreLayout layout,
        UnpublishedPins unpublished,
        TimeProvider timeProvider)
    {
        _connection = connection;
        _synchronizer = synchronizer;
        _layout = layout;
        _unpublished = unpublished;
        _timeProvider = timeProvider;
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

        var found = await GetAsync(_layout.AffinityKeyOf(id)).ConfigureAwait(false);
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
        await SetAsync(_layout.AffinityKeyOf(id), backend, timeToLive, keepForPublication: id).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public async ValueTask RemoveAsync(string id, CancellationToken cancellationToken)
    {
        await _local.RemoveAsync(id, cancellationToken).ConfigureAwait(false);
        _unpublished.Forget(id);
        if (Connected() is not { } multiplexer)
        {
            // A pin Redis held from before the outage stays there until it expires: it names the backend that deleted
            // the id, which answers 404 for it as any other would.
            return;
        }

        try
        {
            await multiplexer.GetDatabase().KeyDeleteAsync(_layout.AffinityKeyOf(id)).ConfigureAwait(false);
            Succeeded();
        }
        catch (Exception e)
        {
            _connection.ReportOutage(e);
        }
    }

    /// <inheritdoc/>
    public async ValueTask<string?> FindStickyAsync(string key, CancellationToken cancellationToken)
    {
        if (await _local.FindStickyAsync(key, cancellationToken).ConfigureAwait(false) is { } backend)
        {
            return backend;
        }

        var found = await GetAsync(_layout.StickyKeyOf(key)).ConfigureAwait(false);
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
        await SetAsync(_layout.StickyKeyOf(key), backend, timeToLive, keepForPublication: null).ConfigureAwait(false);
    }

    private async ValueTask<(string Backend, TimeSpan Expiry)?> GetAsync(RedisKey key)
    {
        if (Connected() is not { } multiplexer)
        {
            return null;
        }

        Interlocked.Increment(ref _remoteLookups);
        try
        {
            var found = await multiplexer.GetDatabase().StringGetWithExpiryAsync(key).ConfigureAwait(false);
            Succeeded();
            return found.Value.IsNull || found.Expiry is not { } expiry || expiry <= TimeSpan.Zero ? null : ((string)found.Value!, expiry);
        }
        catch (Exception e)
        {
            _connection.ReportOutage(e);
            return null;
        }
    }

    /// <summary>
    /// Writes a pin; when Redis cannot take it, keeps the id for publication (<paramref name="keepForPublication"/>:
    /// <see langword="null"/> for a soft key), then reports the outage.
    /// </summary>
    private async ValueTask SetAsync(RedisKey key, string backend, TimeSpan timeToLive, string? keepForPublication)
    {
        var multiplexer = _connection.Multiplexer;
        Exception? failure = null;
        if (multiplexer is { IsConnected: true })
        {
            try
            {
                await multiplexer.GetDatabase().StringSetAsync(key, backend, timeToLive).ConfigureAwait(false);
                Succeeded();
                return;
            }
            catch (Exception e)
            {
                failure = e;
            }
        }

        if (keepForPublication is not null)
        {
            // Kept before the outage is reported, so that the synchronization that ends it cannot miss the pin.
            var now = _timeProvider.GetUtcNow();
            _unpublished.Keep(keepForPublication, backend, now + timeToLive, now);
        }

        if (multiplexer is not null)
        {
            // Still connecting otherwise: the first synchronization publishes what was kept.
            _connection.ReportOutage(failure);
        }
    }

    /// <summary>The multiplexer when it is connected; reports the outage otherwise (once connecting has finished).</summary>
    private IConnectionMultiplexer? Connected()
    {
        var multiplexer = _connection.Multiplexer;
        if (multiplexer is { IsConnected: true })
        {
            return multiplexer;
        }

        if (multiplexer is not null)
        {
            _connection.ReportOutage(null);
        }

        return null;
    }

    private void Succeeded()
    {
        if (_connection.IsInOutage)
        {
            // Redis answered although the store believed it gone (e.g. after a timeout): synchronize, which publishes
            // what waits and ends the outage.
            _synchronizer.Request();
        }
    }
}
