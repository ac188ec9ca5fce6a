namespace Polly.PriorityRouting;

/// <summary>
/// What the answers of one backend (or one partition of it) said about its rate-limit budgets, what this process spent
/// since, and the demand already told to come back when it refills. Guarded by its own lock.
/// </summary>
/// <remarks>
/// A budget read from an answer holds until its reset moment and is then taken as full again (its limit — this
/// process's share of it when peers share the store —, or unknown when the limit was never reported): a step, not a
/// slope. That never over-estimates a budget refilled in windows (Azure checks per-minute quotas over short windows); a
/// budget refilled continuously (OpenAI's) is under-estimated until its reset moment: within a window the view never
/// raises a count, since a higher count may be an older report (see <see cref="BudgetCounter"/>). Every method taking a
/// <c>share</c> takes this process's share of a refilled limit (1 alone, 1/n with n processes on the store).
/// </remarks>
internal sealed class BackendBudget
{
    public const long Unknown = BudgetCounter.Unknown;

    /// <summary>
    /// How many refill windows past the soonest reset the exhausted answers may promise: beyond that, overload is
    /// sustained and promising further only builds a queue of callers told to wait longer and longer (measured in
    /// docs/benchmarks.md: without the bound, p99 time to success reached 93 s at 3x load).
    /// </summary>
    public const int MaxPromisedWindows = 1;

    /// <summary>The token budget (<c>x-ratelimit-*-tokens</c>). A field: the counter is mutated in place.</summary>
    public BudgetCounter Tokens = new();

    /// <summary>The request budget (<c>x-ratelimit-*-requests</c>).</summary>
    public BudgetCounter Requests = new();

    /// <summary>Gets the longest reset delay ever reported: the refill window the promises advance by.</summary>
    public TimeSpan Window => Tokens.Window > Requests.Window ? Tokens.Window : Requests.Window;

    /// <summary>Gets or sets the refill moment the exhausted answers currently send callers back to.</summary>
    public DateTimeOffset PromisedAt { get; set; }

    public long PromisedTokens { get; set; }

    public long PromisedRequests { get; set; }

    /// <summary>
    /// Returns how long until a request of <paramref name="cost"/> tokens fits: zero when it fits now or nothing is
    /// known; a request larger than the whole limit (or than the share of it assumed after a reset) is never held back:
    /// only the backend can judge it.
    /// </summary>
    public TimeSpan TimeUntilAdmitted(long cost, DateTimeOffset now, double share)
    {
        var wait = TimeSpan.Zero;
        var tokens = Tokens.Available(now, share);
        var largest = Tokens.IsAssumed ? Tokens.ShareOfLimit(share) : Tokens.Limit;
        if (tokens != Unknown && tokens < Math.Max(cost, 1) && (largest == Unknown || cost <= largest) && now < Tokens.ResetAt)
        {
            wait = Tokens.ResetAt - now;
        }

        var requests = Requests.Available(now, share);
        if (requests != Unknown && requests < 1 && now < Requests.ResetAt && Requests.ResetAt - now > wait)
        {
            wait = Requests.ResetAt - now;
        }

        return wait;
    }

    /// <summary>
    /// Promises a request of <paramref name="cost"/> tokens a moment, no sooner than <paramref name="earliest"/>, at
    /// which the demand already promised plus this one still fits the refilled budget: the soonest reset, else the next
    /// window (up to <see cref="MaxPromisedWindows"/> past it); when those are full, <paramref name="earliest"/> itself,
    /// reserving nothing.
    /// </summary>
    public DateTimeOffset Promise(long cost, DateTimeOffset earliest, double share)
    {
        if (PromisedAt < earliest)
        {
            PromisedAt = earliest;
            PromisedTokens = 0;
            PromisedRequests = 0;
        }

        if (!Fits(cost, share))
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

    // Each process promises its share of a refill: the callers of every process sharing the store come back at once.
    private bool Fits(long cost, double share)
        => (PromisedTokens == 0 && PromisedRequests == 0) ||
           ((Tokens.Limit == Unknown || PromisedTokens + cost <= Tokens.ShareOfLimit(share)) &&
            (Requests.Limit == Unknown || PromisedRequests + 1 <= Requests.ShareOfLimit(share)));
}
