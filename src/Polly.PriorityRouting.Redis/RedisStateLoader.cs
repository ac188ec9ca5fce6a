using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis;

/// <summary>
/// Loads the shared state into the mirror: <c>SCAN</c> of the key prefix on every primary, then each key's <c>PTTL</c>
/// and value, pipelined by batches.
/// </summary>
/// <remarks>
/// A key the store did not write is skipped, never fatal: a name it cannot read, a key of another type (a hash or a
/// list someone created under the prefix), a value that is not a reason, a key without expiry. Only a failure to reach
/// Redis fails the load.
/// </remarks>
internal sealed partial class RedisStateLoader
{
    // Keys whose reads are in flight at once: bounds what one load holds, whatever the size of the keyspace.
    private const int BatchSize = 1000;
    private const int ScanPageSize = 250;

    private readonly RedisStoreLayout _layout;
    private readonly LocalMirror _mirror;
    private readonly ILogger _logger;
    private int _loads;

    public RedisStateLoader(RedisStoreLayout layout, LocalMirror mirror, ILogger logger)
    {
        _layout = layout;
        _mirror = mirror;
        _logger = logger;
    }

    /// <summary>Gets how many loads began (a test hook).</summary>
    public int LoadCount => Volatile.Read(ref _loads);

    /// <summary>
    /// Loads every key of the given primaries; throws only when Redis cannot be reached.
    /// </summary>
    /// <returns>How many deadlines were loaded.</returns>
    public async Task<int> LoadAsync(IConnectionMultiplexer multiplexer, IReadOnlyList<IServer> primaries, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _loads);
        var database = multiplexer.GetDatabase();
        var batch = new List<(BackendStateKey Key, RedisKey RedisKey)>(BatchSize);
        var loaded = 0;
        foreach (var server in primaries)
        {
            await foreach (var redisKey in server.KeysAsync(database.Database, _layout.ScanPattern, ScanPageSize).WithCancellation(cancellationToken).ConfigureAwait(false))
            {
                if (!_layout.TryGetStateKey(redisKey, out var key))
                {
                    Log.SkippedKey(_logger, "a name the store does not write");
                    continue;
                }

                batch.Add((key, redisKey));
                if (batch.Count == BatchSize)
                {
                    loaded += await ReadAsync(database, batch).ConfigureAwait(false);
                    batch.Clear();
                }
            }
        }

        return loaded + await ReadAsync(database, batch).ConfigureAwait(false);
    }

    private async Task<int> ReadAsync(IDatabase database, List<(BackendStateKey Key, RedisKey RedisKey)> batch)
    {
        // Sent together, awaited one by one: the reads of a batch are pipelined.
        var reads = batch.Select(entry => (entry.Key, TimeToLive: database.KeyTimeToLiveAsync(entry.RedisKey), Value: database.StringGetAsync(entry.RedisKey))).ToList();
        var loaded = 0;
        foreach (var (key, timeToLive, value) in reads)
        {
            TimeSpan? remaining;
            RedisValue stored;
            try
            {
                remaining = await timeToLive.ConfigureAwait(false);
            }
            finally
            {
                // Observed whatever happens to the first read, so that its failure is never unobserved.
                stored = await ReadValueAsync(value).ConfigureAwait(false);
            }

            if (remaining is not { } left || left <= TimeSpan.Zero)
            {
                continue;
            }

            if (stored.IsNull || !ThrottleMessage.TryParseStoredReason((string?)stored, out var reason))
            {
                Log.SkippedKey(_logger, "a value that is not a reason, or a type other than string");
                continue;
            }

            _mirror.AdoptLoaded(key, (long)Math.Ceiling(left.TotalMilliseconds), reason);
            loaded++;
        }

        return loaded;
    }

    /// <summary>
    /// Reads a key's value; a key of another type (<c>WRONGTYPE</c>) reads as nothing.
    /// </summary>
    private static async Task<RedisValue> ReadValueAsync(Task<RedisValue> value)
    {
        try
        {
            return await value.ConfigureAwait(false);
        }
        catch (RedisServerException)
        {
            return RedisValue.Null;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(4, LogLevel.Debug, "Skipped a key under the prefix that the store did not write: {What}.")]
        public static partial void SkippedKey(ILogger logger, string what);
    }
}
