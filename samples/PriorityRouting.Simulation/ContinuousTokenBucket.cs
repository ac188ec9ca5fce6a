namespace PriorityRouting.Simulation;

/// <summary>
/// OpenAI's rate limit on virtual time: a bucket replenished continuously at the sustained rate, holding at most one
/// short window's worth (OpenAI enforces a per-minute limit over shorter periods); its reset is the time until it is
/// full again, as OpenAI's <c>x-ratelimit-reset-tokens</c> reports it.
/// </summary>
internal sealed class ContinuousTokenBucket : IVirtualBudget
{
    private readonly double _ratePerSecond;
    private readonly double _capacity;
    private readonly DateTimeOffset _start;
    private readonly TimeSpan _window;
    private DateTimeOffset _last;
    private double _tokens;

    /// <param name="capacityPerSecond">The sustained capacity.</param>
    /// <param name="window">The period whose worth the bucket holds at most.</param>
    /// <param name="start">The virtual moment the bucket starts full.</param>
    public ContinuousTokenBucket(double capacityPerSecond, TimeSpan window, DateTimeOffset start)
    {
        _ratePerSecond = capacityPerSecond;
        _capacity = capacityPerSecond * window.TotalSeconds;
        _tokens = _capacity;
        _start = start;
        _last = start;
        _window = window;
    }

    public long Remaining => (long)Math.Floor(_tokens);

    public long Limit => (long)Math.Floor(_capacity);

    public long Refills => (_last - _start).Ticks / _window.Ticks;

    public TimeSpan UntilReplenishment(DateTimeOffset now)
    {
        Advance(now);
        return TimeSpan.FromSeconds((_capacity - _tokens) / _ratePerSecond);
    }

    public void Advance(DateTimeOffset now)
    {
        if (now > _last)
        {
            _tokens = Math.Min(_capacity, _tokens + (_ratePerSecond * (now - _last).TotalSeconds));
            _last = now;
        }
    }

    public bool TryAcquire(DateTimeOffset now, out TimeSpan retryAfter, long cost = 1)
    {
        Advance(now);
        if (_tokens >= cost)
        {
            _tokens -= cost;
            retryAfter = TimeSpan.Zero;
            return true;
        }

        // A request larger than the bucket never fits: it is told when the bucket is full, like any other.
        retryAfter = TimeSpan.FromSeconds((Math.Min(cost, _capacity) - _tokens) / _ratePerSecond);
        return false;
    }
}
