namespace PriorityRouting.Simulation;

/// <summary>
/// A token bucket on virtual time: every replenishment period it is refilled with a period's worth of capacity, up to
/// that same amount, like <c>System.Threading.RateLimiting.TokenBucketRateLimiter</c> with a queue of zero.
/// </summary>
internal sealed class VirtualTokenBucket
{
    private readonly double _tokensPerPeriod;
    private readonly TimeSpan _period;
    private DateTimeOffset _nextReplenishment;
    private double _tokens;

    /// <param name="requestsPerSecond">The sustained capacity.</param>
    /// <param name="period">How often the bucket is refilled.</param>
    /// <param name="start">The virtual moment the bucket starts full.</param>
    /// <param name="phase">Offsets the refills, so that backends do not all refill at the same instant.</param>
    public VirtualTokenBucket(double requestsPerSecond, TimeSpan period, DateTimeOffset start, TimeSpan phase)
    {
        _tokensPerPeriod = requestsPerSecond * period.TotalSeconds;
        _period = period;
        _tokens = _tokensPerPeriod;
        _nextReplenishment = start + phase;
    }

    /// <summary>Gets the whole tokens left after the last acquisition, as <c>x-ratelimit-remaining-requests</c> reports them.</summary>
    public long Remaining => (long)Math.Floor(_tokens);

    /// <summary>Returns the time until the next refill, as <c>x-ratelimit-reset-requests</c> reports it.</summary>
    public TimeSpan UntilReplenishment(DateTimeOffset now) => _nextReplenishment - now;

    /// <summary>Takes one token, or tells how long until the next refill.</summary>
    public bool TryAcquire(DateTimeOffset now, out TimeSpan retryAfter)
    {
        while (now >= _nextReplenishment)
        {
            _tokens = _tokensPerPeriod;
            _nextReplenishment += _period;
        }

        if (_tokens >= 1)
        {
            _tokens--;
            retryAfter = TimeSpan.Zero;
            return true;
        }

        retryAfter = _nextReplenishment - now;
        return false;
    }
}
