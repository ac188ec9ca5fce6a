using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis;

/// <summary>
/// An <see cref="IAffinityStore"/> shared by every replica connected to one Redis: each pin is one string key
/// (<c>affinity:{KeyPrefix}{id}</c> → backend identity) that expires with the pin, plus a bounded local copy.
/// </summary>
/// <remarks>
/// <para>
/// Requests without ids never touch it. A pin is written to Redis and awaited before the bytes that carry the new id
/// reach the caller (<see cref="AffinitySniffingStream"/>), so a follow-up sent the instant the answer arrives, from any
/// replica, finds it. A replica that has not seen an id looks it up in Redis once (a <c>GET</c>) and keeps what it
/// found locally. Both rules close the race between replicas; either alone would leave a window (a lost write, or a
/// replica that only reads locally).
/// </para>
/// <para>
/// Fail-open, as the throttle store: while Redis cannot be reached pins stay local, lookups answer from memory (an
/// unknown id is then routed normally), and one warning is logged per outage. Affinity keys live outside the throttle
/// store's prefix so that its <c>SCAN</c> never walks them; an ACL must grant <c>~affinity:{KeyPrefix}*</c> too.
/// </para>
/// </remarks>
internal sealed partial class RedisAffinityStore : IAffinityStore
{
    /// <summary>What the throttle store's key prefix is preceded by for affinity keys.</summary>
    public const string KeyPrefixPrefix = "affinity:";

    /// <summary>What soft-affinity keys are preceded by, apart from ids (which never contain it).</summary>
    public const string StickyPrefix = "~";

    private readonly Func<IConnectionMultiplexer?> _multiplexer;
    private readonly string _keyPrefix;
    private readonly InMemoryAffinityStore _local;
    private readonly ILogger _logger;
    private int _inOutage;

    public RedisAffinityStore(Func<IConnectionMultiplexer?> multiplexer, string keyPrefix, TimeProvider timeProvider, ILogger<RedisAffinityStore> logger)
    {
        _multiplexer = multiplexer;
        _keyPrefix = KeyPrefixPrefix + keyPrefix;
        _local = new InMemoryAffinityStore(InMemoryAffinityStore.DefaultCapacity, timeProvider);
        _logger = logger;
    }

    /// <summary>Gets the local copy (tests).</summary>
    internal InMemoryAffinityStore Local => _local;

    /// <summary>Gets the number of lookups that went to Redis (tests).</summary>
    internal int RemoteLookups => Volatile.Read(ref _remoteLookups);

    private int _remoteLookups;

    public RedisKey KeyOf(string id) => _keyPrefix + id;

    /// <inheritdoc/>
    public async ValueTask<string?> FindAsync(string id, CancellationToken cancellationToken)
    {
        if (_local.TryFind(id, out var backend))
        {
            return backend;
        }

        if (_multiplexer() is not { IsConnected: true } multiplexer)
        {
            return null;
        }

        Interlocked.Increment(ref _remoteLookups);
        try
        {
            var found = await multiplexer.GetDatabase().StringGetWithExpiryAsync(KeyOf(id)).ConfigureAwait(false);
            Recovered();
            if (found.Value.IsNull || found.Expiry is not { } expiry || expiry <= TimeSpan.Zero)
            {
                return null;
            }

            var holder = (string)found.Value!;
            _local.Pin(id, holder, expiry);
            return holder;
        }
        catch (Exception e)
        {
            Failed(e);
            return null;
        }
    }

    /// <inheritdoc/>
    public async ValueTask PinAsync(string id, string backend, TimeSpan timeToLive, CancellationToken cancellationToken)
    {
        _local.Pin(id, backend, timeToLive);
        if (_multiplexer() is not { IsConnected: true } multiplexer)
        {
            Failed(null);
            return;
        }

        try
        {
            await multiplexer.GetDatabase().StringSetAsync(KeyOf(id), backend, timeToLive).ConfigureAwait(false);
            Recovered();
        }
        catch (Exception e)
        {
            Failed(e);
        }
    }

    /// <inheritdoc/>
    public async ValueTask RemoveAsync(string id, CancellationToken cancellationToken)
    {
        await _local.RemoveAsync(id, cancellationToken).ConfigureAwait(false);
        if (_multiplexer() is not { IsConnected: true } multiplexer)
        {
            return;
        }

        try
        {
            await multiplexer.GetDatabase().KeyDeleteAsync(KeyOf(id)).ConfigureAwait(false);
            Recovered();
        }
        catch (Exception e)
        {
            Failed(e);
        }
    }

    /// <inheritdoc/>
    public ValueTask<string?> FindStickyAsync(string key, CancellationToken cancellationToken)
        => FindAsync(StickyPrefix + key, cancellationToken);

    /// <inheritdoc/>
    public ValueTask PinStickyAsync(string key, string backend, TimeSpan timeToLive, CancellationToken cancellationToken)
        => PinAsync(StickyPrefix + key, backend, timeToLive, cancellationToken);

    private void Failed(Exception? exception)
    {
        if (Interlocked.Exchange(ref _inOutage, 1) == 0)
        {
            Log.AffinityNotShared(_logger, exception);
        }
    }

    private void Recovered()
    {
        if (Interlocked.Exchange(ref _inOutage, 0) == 1)
        {
            Log.AffinitySharedAgain(_logger);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(20, LogLevel.Warning,
            "Redis cannot be reached: affinity pins are kept in this process only, and ids created elsewhere are routed normally until it returns.")]
        public static partial void AffinityNotShared(ILogger logger, Exception? exception);

        [LoggerMessage(21, LogLevel.Information, "Redis can be reached again: affinity pins are shared again.")]
        public static partial void AffinitySharedAgain(ILogger logger);
    }
}
