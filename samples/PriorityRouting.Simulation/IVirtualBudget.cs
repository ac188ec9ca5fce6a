namespace PriorityRouting.Simulation;

/// <summary>
/// A backend's rate limit on virtual time: what it admits, what it reports on its answers
/// (<c>x-ratelimit-remaining-*</c>, <c>-limit-*</c>, <c>-reset-*</c>), and when it refills.
/// </summary>
internal interface IVirtualBudget
{
    /// <summary>Gets the whole tokens left after the last acquisition, as <c>x-ratelimit-remaining-*</c> reports them.</summary>
    long Remaining { get; }

    /// <summary>Gets the most the budget holds, as <c>x-ratelimit-limit-*</c> reports it.</summary>
    long Limit { get; }

    /// <summary>Gets the index of the current refill window (whole periods since the start for a continuous budget).</summary>
    long Refills { get; }

    /// <summary>Returns the time until the budget is full again, as <c>x-ratelimit-reset-*</c> reports it.</summary>
    TimeSpan UntilReplenishment(DateTimeOffset now);

    /// <summary>Refills the budget for the time that has passed by <paramref name="now"/>.</summary>
    void Advance(DateTimeOffset now);

    /// <summary>Takes <paramref name="cost"/> tokens, or tells how long until they may be there.</summary>
    bool TryAcquire(DateTimeOffset now, out TimeSpan retryAfter, long cost = 1);
}
