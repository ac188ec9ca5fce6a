namespace PriorityRouting.Simulation;

/// <summary>
/// A token bucket on virtual time: every replenishment period it is refilled with a period's worth of capacity, up to
/// that same amount, like <c>System.Threading.RateLimiting.TokenBucketRateLimiter</c> with a queue of zero — and like
/// Azure OpenAI checking a per-minute quota over short windows.
/// </summary>
internal sealed class VirtualTokenBucket : IVirtualBudget
{
    private readonly double _tokensPerPeriod;
    private readonly TimeSpan _period;
    private DateTimeOffset _nextReplenishment;
    private double _tokens;

    /// <param name="capacityPerSecond">The sustained capacity.</param>
    /// <param name="period">How often the bucket is refilled.</param>
    /// <param name="start">The virtual moment the bucket starts full.</param>
    /// <param name="phase">Offsets the refills, so that backends do not all refill at the same instant.</param>
    public VirtualTokenBucket(double capacityPerSecond, TimeSpan period, DateTimeOffset start, TimeSpan phase)
    {
        _tokensPerPeriod = capacityPerSecond * period.TotalSeconds;
        _period = period;
        _tokens = _tokensPerPeriod;
        _nextReplenishment = start + phase;
    }

    /// <summary>Gets the whole tokens left after the last acquisition, as <c>x-ratelimit-remaining-*</c> reports them.</summary>
    public long Remaining => (long)Math.Floor(_tokens);

    /// <summary>Gets the capacity of one period, as <c>x-ratelimit-limit-*</c> reports it.</summary>
    public long Limit => (long)Math.Floor(_tokensPerPeriod);

    /// <summary>Gets the number of refills so far: the index of the current window.</summary>
    public long Refills { get; private set; }

    /// <summary>Returns the time until the next refill, as <c>x-ratelimit-reset-*</c> reports it.</summary>
    public TimeSpan UntilReplenishment(DateTimeOffset now) => _nextReplenishment - now;

    /// <summary>Refills the bucket for every period that has passed by <paramref name="now"/>.</summary>
    public void Advance(DateTimeOffset now)
    {
        while (now >= _nextReplenishment)
        {
            _tokens = _tokensPerPeriod;
            _nextReplenishment += _period;
            Refills++;
        }
    }

    /// <summary>Takes <paramref name="cost"/> tokens, or tells how long until the next refill.</summary>
    public bool TryAcquire(DateTimeOffset now, out TimeSpan retryAfter, long cost = 1)
    {
        Advance(now);
        if (_tokens >= cost)
        {
            _tokens -= cost;
            retryAfter = TimeSpan.Zero;
            return true;
        }

        retryAfter = _nextReplenishment - now;
        return false;
    }
}
