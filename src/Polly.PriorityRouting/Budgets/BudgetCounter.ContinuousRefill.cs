namespace Polly.PriorityRouting;

/// <content>
/// A budget refilled continuously (OpenAI's: its reset is the time until it is full): its rate, what it refilled since
/// it was last counted, and how reports merge when counts grow.
/// </content>
/// <remarks>
/// <para>
/// A budget refilled continuously that this process spends alone (no peer shares its store) is counted as the backend
/// counts it: a reported count grows at the rate from the moment it was reported as of, up to the limit, and past the
/// full moment the refill pays this process's spends as they age, so a request is admitted as soon as the refill covers
/// it rather than at the next full moment (measured: with completions in flight, one replica served 95.2 % instead of
/// 93.7 % at 1× and told callers "come back" 0.37 instead of 0.90 times a request). With peers, a count does not say who
/// spends the refill, and the rule above holds (measured: a slope at this process's share of the rate served up to 10 points
/// less at 8 replicas).
/// </para>
/// </remarks>
internal partial struct BudgetCounter
{
    /// <summary>A continuous refill's rate: an own answer's, else a window's worth of the limit per window.</summary>
    private readonly double RefillPerSecond => _refillPerSecond > 0 ? _refillPerSecond : Limit / Window.TotalSeconds;

    /// <summary>
    /// Gets a value indicating whether the budget refills continuously and this process spends it alone: its count then
    /// grows at the refill's rate from the moment it was reported as of. With peers, a reported count does not say who
    /// spends the refill: it holds until its full moment, where this process assumes its share (<see cref="Roll"/>).
    /// </summary>
    private readonly bool RefillsGradually
        => _refillsContinuously && _share >= 1 && _reported != Unknown && Limit != Unknown && Window > TimeSpan.Zero;

    private void CountRefillFrom(DateTimeOffset countedAt)
    {
        _refilledAt = countedAt;
        _refillFraction = 0;
    }

    /// <summary>
    /// Counts what a budget that <see cref="RefillsGradually"/> refilled since it was last counted: a reported count grows
    /// up to the limit; an assumed one is the whole limit already, so the refill pays the spends since, oldest first.
    /// </summary>
    private void Refill(DateTimeOffset now, double share)
    {
        _share = share;
        if (!RefillsGradually || now <= _refilledAt)
        {
            // Counted from now on, should the budget become this process's alone.
            CountRefillFrom(now > _refilledAt ? now : _refilledAt);
            return;
        }

        var refilled = (RefillPerSecond * (now - _refilledAt).TotalSeconds) + _refillFraction;
        var whole = refilled >= Limit ? Limit : (long)refilled;
        _refillFraction = refilled >= Limit ? 0 : refilled - whole;
        _refilledAt = now;
        if (_assumed)
        {
            _spends?.Forgive(whole, long.MaxValue);
        }
        else if (_reported < Limit)
        {
            _reported = Math.Min(Limit, _reported + whole);
        }
    }

    /// <summary>
    /// Merges a report into the window of a budget that <see cref="RefillsGradually"/>: a count grows after the moment it
    /// was reported as of, so the lowest count is not the newest. A newer own answer replaces a count of an own answer
    /// (it includes the spends admitted before it; the refill since is counted from its admission), an older one is
    /// ignored (the spends it does not include were dropped by the newer one); any other report replaces the count when
    /// lower once both are grown to now.
    /// </summary>
    private void MergeGrowing(long reported, DateTimeOffset resetAt, DateTimeOffset reportedAt, DateTimeOffset now, long? includedSpends)
    {
        Refill(now, _share);
        var replaces = includedSpends is { } own && _countTicket > 0
            ? IsNewerThanCount(own)
            : Grown(reported, now - reportedAt) < _reported;
        if (replaces)
        {
            _reported = reported;
            _countTicket = includedSpends is { } included ? TicketOf(included) : 0;
            if (includedSpends is { } upTo)
            {
                _spends?.DropUpTo(upTo);
            }

            CountRefillFrom(reportedAt);
        }

        if (resetAt > ResetAt)
        {
            ResetAt = resetAt;
        }
    }

    private readonly long Grown(long count, TimeSpan elapsed)
    {
        var grown = count + (RefillPerSecond * Math.Max(0, elapsed.TotalSeconds));
        return grown >= Limit ? Math.Max(count, Limit) : (long)grown;
    }

    /// <summary>
    /// Takes off the spends a continuous refill paid while the view rolled <paramref name="windows"/> windows on: over the
    /// window that ended, what was outstanding when it began (nothing of a reported window: the report's reset already
    /// counted everything before the spends since), and over each whole window after it — in which this process sent
    /// nothing, or it would have rolled then — a window's worth of any of them. This process's share of the refill: its
    /// peers' spends are paid from the rest, as its share of the limit is what it may spend.
    /// </summary>
    private void ForgiveRefilled(SpendLog spends, long windows, double share)
    {
        var perWindow = RefillPerSecond * Window.TotalSeconds * share;
        spends.Forgive(Saturated(perWindow), _outstandingAtWindowStart);
        spends.Forgive(Saturated(perWindow * (windows - 1)), long.MaxValue);
        _outstandingAtWindowStart = spends.LatestTicket;

        static long Saturated(double amount) => amount >= long.MaxValue ? long.MaxValue : (long)amount;
    }
}
