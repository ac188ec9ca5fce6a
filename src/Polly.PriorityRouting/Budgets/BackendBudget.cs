namespace Polly.PriorityRouting;

/// <summary>
/// What one backend (or one partition of it) last said about its rate-limit budgets, what this process spent since,
/// and the demand already told to come back when it refills. Guarded by its own lock.
/// </summary>
/// <remarks>
/// A budget read from an answer holds until its reset moment and is then taken as full again (its limit, or unknown
/// when the limit was never reported): a step, not a slope. That never over-estimates a budget refilled in windows
/// (Azure checks per-minute quotas over short windows); a budget refilled continuously is under-estimated until the
/// next answer reports it again.
/// </remarks>
internal sealed class BackendBudget
{
    public const long Unknown = -1;

    /// <summary>
    /// How many refill windows past the soonest reset the exhausted answers may promise: beyond that, overload is
    /// sustained and promising further only builds a queue of callers told to wait longer and longer (measured in
    /// docs/benchmarks.md: without the bound, p99 time to success reached 93 s at 3x load).
    /// </summary>
    public const int MaxPromisedWindows = 1;

    public long RemainingTokens { get; set; } = Unknown;

    public long LimitTokens { get; set; } = Unknown;

    public DateTimeOffset TokensResetAt { get; set; }

    public long RemainingRequests { get; set; } = Unknown;

    public long LimitRequests { get; set; } = Unknown;

    public DateTimeOffset RequestsResetAt { get; set; }

    /// <summary>Gets or sets the longest reset delay ever reported: the refill window the promises advance by.</summary>
    public TimeSpan Window { get; set; }

    /// <summary>Gets or sets the refill moment the exhausted answers currently send callers back to.</summary>
    public DateTimeOffset PromisedAt { get; set; }

    public long PromisedTokens { get; set; }

    public long PromisedRequests { get; set; }

    /// <summary>Returns the tokens available at <paramref name="now"/>, or <see cref="Unknown"/>.</summary>
    public long TokensAt(DateTimeOffset now) => now < TokensResetAt ? RemainingTokens : LimitTokens;

    /// <summary>Returns the requests available at <paramref name="now"/>, or <see cref="Unknown"/>.</summary>
    public long RequestsAt(DateTimeOffset now) => now < RequestsResetAt ? RemainingRequests : LimitRequests;

    /// <summary>
    /// Returns how long until a request of <paramref name="cost"/> tokens fits: zero when it fits now or nothing is
    /// known; a request larger than the whole limit is never held back (only the backend can judge it).
    /// </summary>
    public TimeSpan TimeUntilAdmitted(long cost, DateTimeOffset now)
    {
        var wait = TimeSpan.Zero;
        var tokens = TokensAt(now);
        if (tokens != Unknown && tokens < Math.Max(cost, 1) && (LimitTokens == Unknown || cost <= LimitTokens) && now < TokensResetAt)
        {
            wait = TokensResetAt - now;
        }

        var requests = RequestsAt(now);
        if (requests != Unknown && requests < 1 && now < RequestsResetAt && RequestsResetAt - now > wait)
        {
            wait = RequestsResetAt - now;
        }

        return wait;
    }

    /// <summary>
    /// Promises a request of <paramref name="cost"/> tokens a moment, no sooner than <paramref name="earliest"/>, at
    /// which the demand already promised plus this one still fits the refilled budget: the soonest reset, else the next
    /// window (up to <see cref="MaxPromisedWindows"/> past it); when those are full, <paramref name="earliest"/> itself,
    /// reserving nothing.
    /// </summary>
    public DateTimeOffset Promise(long cost, DateTimeOffset earliest)
    {
        if (PromisedAt < earliest)
        {
            PromisedAt = earliest;
            PromisedTokens = 0;
            PromisedRequests = 0;
        }

        if (!Fits(cost))
        {
            if (Window <= TimeSpan.Zero || PromisedAt + Window > earliest + (Window * MaxPromisedWindows))
            {
                // Every window within the horizon is promised: the queue must not grow without bound under sustained
                // overload. This caller gets the plain soonest moment, reserving nothing.
                return earliest;
            }

            PromisedAt += Window;
            PromisedTokens = 0;
            PromisedRequests = 0;
        }

        PromisedTokens += cost;
        PromisedRequests++;
        return PromisedAt;
    }

    private bool Fits(long cost)
        => (PromisedTokens == 0 && PromisedRequests == 0) ||
           ((LimitTokens == Unknown || PromisedTokens + cost <= LimitTokens) && (LimitRequests == Unknown || PromisedRequests + 1 <= LimitRequests));
}
