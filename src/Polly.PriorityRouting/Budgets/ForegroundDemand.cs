namespace Polly.PriorityRouting;

/// <summary>
/// The foreground's demand on one budget (tokens, or requests): its recent peak rate, the most foreground requests spent
/// within one <see cref="Slice"/> of the current refill window or of a recent one, halved for each window since.
/// Background admission leaves free what the foreground can spend at that rate until the reset (<see cref="Expected"/>):
/// a budget refilled in windows loses at its reset the room nobody spent (one refilled continuously stops refilling when
/// full), so what the foreground cannot spend before then is what is left for background work. Any more, and a
/// foreground burst later in the window finds its room spent and waits for the next refill: a window holds lulls and
/// bursts, and a backend counts a request against the window that admits it, so the foreground's average (its spend in
/// a recent window) would let background work admitted in a lull take what the next burst needs.
/// </summary>
/// <remarks>
/// The one rule of the foreground's expected demand. The process's budget view (<see cref="BackendBudget"/>) keeps one
/// per budget for this process's demand (<see cref="Follow"/>); a shared budget keeps one for the demand of every
/// process, ended with the shared window (<see cref="EndWindows"/>): the Redis script <c>ReservationScripts.Reserve</c>
/// in Lua, with the same slices and whole-number halving, and the simulation's shared counter with this type. Bounded:
/// three counts and two moments. With no foreground the peak halves every window, so a background-only workload (a
/// nightly batch) soon has the whole budget less the headroom. Mutated under its owner's lock.
/// </remarks>
internal struct ForegroundDemand
{
    /// <summary>
    /// The span the foreground's peak rate is measured over: one second, the shortest window Azure checks its per-minute
    /// quotas over. A slice starts with the first foreground spend after the last one ended.
    /// </summary>
    public static readonly TimeSpan Slice = TimeSpan.FromSeconds(1);

    // The end of the window followed, when followed; default until known.
    private DateTimeOffset _windowEnd;

    // The end of the slice SliceSpent belongs to; default before the window's first spend.
    private DateTimeOffset _sliceEnd;

    /// <summary>Gets what foreground requests spent in the current slice.</summary>
    public long SliceSpent { get; private set; }

    /// <summary>Gets the most foreground requests spent in one slice of the current window.</summary>
    public long Peak { get; private set; }

    /// <summary>Gets the most foreground requests spent in one slice of a recent window, halved for each window since.</summary>
    public long RecentPeak { get; private set; }

    /// <summary>
    /// Counts a foreground admission of <paramref name="amount"/> at <paramref name="now"/>, a slice's spend up to
    /// <paramref name="limit"/> (negative: unknown, unbounded): a backend never spends more than its limit in one window,
    /// so a request larger than the whole budget (admitted for the backend to judge) weighs as the limit, and halves away
    /// as fast.
    /// </summary>
    public void Spend(long amount, DateTimeOffset now, long limit)
    {
        if (now >= _sliceEnd)
        {
            _sliceEnd = now + Slice;
            SliceSpent = 0;
        }

        SliceSpent += amount > 0 ? amount : 0;
        if (limit >= 0 && SliceSpent > limit)
        {
            SliceSpent = limit;
        }

        Peak = Math.Max(Peak, SliceSpent);
    }

    /// <summary>
    /// Returns the foreground demand expected until the reset, <paramref name="untilReset"/> from now: what the
    /// foreground spends at its recent peak rate in every slice begun until then, within 0 and <paramref name="limit"/>.
    /// </summary>
    public readonly long Expected(long limit, TimeSpan untilReset)
        => Math.Clamp(AtPeak(Math.Max(Peak, RecentPeak), untilReset), 0, Math.Max(0, limit));

    /// <summary>
    /// Returns how long until the foreground demand expected until the reset (<see cref="Expected"/>), now
    /// <paramref name="untilReset"/> away, is at most <paramref name="room"/>: zero when it is already; else until only
    /// the slices <paramref name="room"/> covers at the peak rate are left, or until the reset when it covers none.
    /// </summary>
    public readonly TimeSpan UntilExpectedAtMost(long room, TimeSpan untilReset)
    {
        var peak = Math.Max(Peak, RecentPeak);
        if (untilReset <= TimeSpan.Zero || AtPeak(peak, untilReset) <= room)
        {
            return TimeSpan.Zero;
        }

        var covered = room < peak ? 0 : Math.Min(room / peak, untilReset.Ticks / Slice.Ticks);
        return untilReset - TimeSpan.FromTicks(covered * Slice.Ticks);
    }

    /// <summary>
    /// Returns the foreground demand a background request promised the refill at <paramref name="at"/> (an exhausted
    /// answer's moment, or a waiter's) must leave, within 0 and <paramref name="limit"/>: <see cref="Expected"/> until the
    /// followed window's end while <paramref name="at"/> lies in it (a whole window when none is followed) — admission
    /// then is what was promised; for a later refill, what the peak that ending the windows up to it would leave spends
    /// in the last slice of that window: the caller's room is in that window, and its admission there waits (its next
    /// answer or wait says until when) until the foreground can no longer spend it.
    /// </summary>
    public readonly long ExpectedAt(DateTimeOffset at, TimeSpan window, long limit)
        => _windowEnd == default || at < _windowEnd
            ? Expected(limit, _windowEnd == default ? window : _windowEnd - at)
            : Math.Clamp(AtPeak(RecentAfter(Peak, RecentPeak, WindowsEndedBy(_windowEnd, at, window)), Slice), 0, Math.Max(0, limit));

    /// <summary>
    /// Ends the current window and <paramref name="windows"/> − 1 more: its peak becomes the recent one, unless the
    /// recent one, halved, is larger; each further window halves it again. The next spend starts a slice.
    /// </summary>
    public void EndWindows(long windows)
    {
        RecentPeak = RecentAfter(Peak, RecentPeak, windows);
        Peak = 0;
        SliceSpent = 0;
        _sliceEnd = default;
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

    /// <summary>What <paramref name="peak"/> in every slice begun within <paramref name="span"/> adds up to.</summary>
    private static long AtPeak(long peak, TimeSpan span)
    {
        var slices = span > TimeSpan.Zero ? ((span.Ticks - 1) / Slice.Ticks) + 1 : 0;
        return peak > 0 && slices > long.MaxValue / peak ? long.MaxValue : peak * slices;
    }

    /// <summary>The recent peak once <paramref name="windows"/> windows ended, the first with <paramref name="peak"/>.</summary>
    private static long RecentAfter(long peak, long recent, long windows) => Math.Max(peak, recent / 2) >> (int)Math.Clamp(windows - 1, 0, 63);

    /// <summary>How many windows of <paramref name="window"/> end from the one ending at <paramref name="end"/> until <paramref name="now"/> (at or after it).</summary>
    private static long WindowsEndedBy(DateTimeOffset end, DateTimeOffset now, TimeSpan window)
        => window > TimeSpan.Zero ? ((now - end).Ticks / window.Ticks) + 1 : 1;
}
