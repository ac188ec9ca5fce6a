namespace Polly.PriorityRouting.Redis;

/// <summary>
/// The Lua script that marks a backend in Redis: it keeps the later deadline, expires with it, and announces a change.
/// </summary>
/// <remarks>
/// Redis runs a script atomically, so two replicas that mark the same backend at once cannot shorten each other's
/// deadline: the later one wins, whatever the order of arrival. Deadlines are relative (<c>PX</c>, <c>PTTL</c>) and
/// measured by the Redis server's clock only, so the replicas' clocks never meet. The script publishes only when it
/// changed the deadline, which keeps the channel quiet when many replicas report the same throttling.
/// </remarks>
internal static class MarkUnavailableScript
{
    /// <summary>
    /// KEYS[1] the backend's key; ARGV[1] remaining milliseconds; ARGV[2] reason; ARGV[3] channel; ARGV[4] message.
    /// Returns { remaining milliseconds now in force, reason now in force }.
    /// </summary>
    public const string Source = """
        local remaining = redis.call('PTTL', KEYS[1])
        local requested = tonumber(ARGV[1])
        if remaining >= requested then
          return { remaining, redis.call('GET', KEYS[1]) }
        end
        redis.call('SET', KEYS[1], ARGV[2], 'PX', requested)
        redis.call('PUBLISH', ARGV[3], ARGV[4])
        return { requested, ARGV[2] }
        """;
}
