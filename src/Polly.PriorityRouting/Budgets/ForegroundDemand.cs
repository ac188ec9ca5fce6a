namespace Polly.PriorityRouting;

/// <summary>
/// The foreground's demand on one budget (tokens, or requests): what foreground requests spent in the current refill
/// window, and the most they spent in a recent one, halved for each window since. Background admission leaves the rest
/// of that recent spend free until the reset (<see cref="Expected"/>): a window holds lulls and bursts, and a backend
/// counts a request against the window that admits it, so background work admitted in a lull early in a window would
/// otherwise spend what a foreground burst later in the same window needs, and send that burst to the next refill.
/// </summary>
/// <remarks>
/// The one rule of the foreground's expected demand. The process's budget view (<see cref="BackendBudget"/>) keeps one
/// per budget for this process's demand (<see cref="Follow"/>); a shared budget keeps one for the demand of every
/// process, ended with the shared window (<see cref="EndWindows"/>): the Redis script <c>ReservationScripts.Reserve</c>
/// in Lua, with the same whole-number halving, and the simulation's shared counter with this type. Bounded: two counts
/// and a moment. With no foreground the recent spend halves every window, so a background-only workload (a nightly
/// batch) soon has the whole budget less the headroom. Mutated under its owner's lock.
/// </remarks>
internal struct ForegroundDemand
{
    // The end of the window Spent belongs to, when followed; default until known.
    private DateTimeOffset _windowEnd;

    /// <summary>Gets what foreground requests spent in the current window.</summary>
    public long Spent { get; private set; }

    /// <summary>Gets the most foreground requests spent in a recent window, halved for each window since.</summary>
    public long Recent { get; private set; }

    /// <summary>
    /// Counts a foreground admission of <paramref name="amount"/> in the current window, up to <paramref name="limit"/>
    /// (negative: unknown, unbounded): a backend never spends more than its limit in one window, so a request larger than
    /// the whole budget (admitted for the backend to judge) is expected again as the limit, and halves away as fast.
    /// </summary>
    public void Spend(long amount, long limit)
    {
        Spent += amount > 0 ? amount : 0;
        if (limit >= 0 && Spent > limit)
        {
            Spent = limit;
        }
    }

    /// <summary>
    /// Returns the foreground demand expected in the rest of the current window: the recent window's spend less what the
    /// current one spent so far, within 0 and <paramref name="limit"/>.
    /// </summary>
    public readonly long Expected(long limit) => Math.Clamp(Recent - Spent, 0, Math.Max(0, limit));

    /// <summary>
    /// Returns the foreground demand expected in the window a refill at <paramref name="at"/> starts (a promise's
    /// moment), within 0 and <paramref name="limit"/>: <see cref="Expected"/> while <paramref name="at"/> lies in the
    /// followed window (or none is followed); else what ending the windows up to it would leave, nothing spent yet in the
    /// new one. Background admission at that refill keeps it, so a promise of that refill must leave it too.
    /// </summary>
    public readonly long ExpectedAt(DateTimeOffset at, TimeSpan window, long limit)
        => _windowEnd == default || at < _windowEnd
            ? Expected(limit)
            : Math.Clamp(RecentAfter(Spent, Recent, WindowsEndedBy(_windowEnd, at, window)), 0, Math.Max(0, limit));

    /// <summary>
    /// Ends the current window and <paramref name="windows"/> − 1 more: its spend becomes the recent one, unless the
    /// recent one, halved, is larger; each further window halves it again.
    /// </summary>
    public void EndWindows(long windows)
    {
        Recent = RecentAfter(Spent, Recent, windows);
        Spent = 0;
    }

    /// <summary>
    /// For an owner that learns its window's end rather than being told it ended (a budget counter that rolls on its
    /// own): ends the followed window once <paramref name="now"/> passes it, then follows the window ending at
    /// <paramref name="windowEnd"/> (of length <paramref name="window"/>) when that lies ahead.
    /// </summary>
    public void Follow(DateTimeOffset now, DateTimeOffset windowEnd, TimeSpan window)
    {
        if (_windowEnd != default && now >= _windowEnd)
        {
            EndWindows(WindowsEndedBy(_windowEnd, now, window));
            _windowEnd = default;
        }

        if (_windowEnd == default && windowEnd > now)
        {
            _windowEnd = windowEnd;
        }
    }

    /// <summary>The recent spend once <paramref name="windows"/> windows ended, the first with <paramref name="spent"/>.</summary>
    private static long RecentAfter(long spent, long recent, long windows) => Math.Max(spent, recent / 2) >> (int)Math.Clamp(windows - 1, 0, 63);

    /// <summary>How many windows of <paramref name="window"/> end from the one ending at <paramref name="end"/> until <paramref name="now"/> (at or after it).</summary>
    private static long WindowsEndedBy(DateTimeOffset end, DateTimeOffset now, TimeSpan window)
        => window > TimeSpan.Zero ? ((now - end).Ticks / window.Ticks) + 1 : 1;
}
