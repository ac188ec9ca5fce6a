namespace Polly.PriorityRouting.Redis;

/// <summary>
/// The Lua script that marks a backend in Redis: it keeps the later deadline, expires with it, and announces a change.
/// </summary>
/// <remarks>
/// Redis runs a script atomically, so two replicas that mark the same backend at once cannot shorten each other's
/// deadline: the later one wins, whatever the order of arrival. Deadlines are relative (<c>PX</c>, <c>PTTL</c>) and
/// measured by the Redis server's clock only, so the replicas' clocks never meet. The script publishes only when it
/// changed the deadline, which keeps the channel quiet when many replicas report the same throttling. An existing key
/// is kept only when it is a string that expires within the maximum: a key that would hold a backend longer than
/// <c>MaxUnavailability</c>, a key without expiry, or a key of another type is overwritten, so Redis heals itself.
/// </remarks>
internal static class MarkUnavailableScript
{
    /// <summary>
    /// KEYS[1] the backend's key; ARGV[1] remaining milliseconds; ARGV[2] reason; ARGV[3] channel; ARGV[4] message;
    /// ARGV[5] the longest remaining time a kept key may have, in milliseconds.
    /// Returns { remaining milliseconds now in force, reason now in force }.
    /// </summary>
    public const string Source = """
        local remaining = redis.call('PTTL', KEYS[1])
        local requested = tonumber(ARGV[1])
        if remaining >= requested and remaining <= tonumber(ARGV[5]) then
          local reason = redis.pcall('GET', KEYS[1])
          if type(reason) == 'string' then
            return { remaining, reason }
          end
        end
        redis.call('SET', KEYS[1], ARGV[2], 'PX', requested)
        redis.call('PUBLISH', ARGV[3], ARGV[4])
        return { requested, ARGV[2] }
        """;
}
