namespace Polly.PriorityRouting;

/// <summary>
/// One rate-limit budget of a backend (its tokens, or its requests): the lowest remaining count reported for the
/// current refill window, less what this process sent since its own last answer. Mutated under the owning
/// <see cref="BackendBudget"/>'s lock.
/// </summary>
/// <remarks>
/// <para>
/// Answers arrive out of order — from this process (a long request answers after a short one sent later) and from other
/// replicas (through the store, later still) — so the newest report is not the last one to arrive. Within one refill
/// window a backend only counts down, so the <b>lowest</b> count reported is the newest, whoever reported it: a higher
/// count arriving later is an older report and never raises the budget. A report whose reset lies more than half a
/// window after the current one belongs to the next window and replaces it. A peer's report more than half a window
/// before it belongs to a window already over and is ignored (the store delivers peers' reports late); this process's
/// own answer that far before it corrects the current window instead: an own answer is never older than the attempts
/// in flight, far less than a window, so the current window was learned from an odd value (one long
/// <c>x-ratelimit-reset-*</c>), which must not hold the view for up to <c>MaxCooldown</c>. Windows are told apart by
/// their reset moment rather than by equality, because peers compute it from whole milliseconds on their own clocks.
/// </para>
/// <para>
/// How long a window is and whether the budget refills in windows at all are learned from the reports too
/// (BudgetCounter.Windows.cs).
/// </para>
/// <para>
/// A report whose reset has already passed when it arrives (a completion answered after the refill of the window that
/// admitted it) says nothing about the budget now and is ignored, but for its limit.
/// </para>
/// <para>
/// This process's own spends are counted apart (<see cref="SpendLog"/>, in admission order) and, at its next answer
/// that is at least as low as everything reported, those admitted up to that answer's attempt are dropped: its count
/// includes them (the backend deducts at admission), so an estimate too high or an attempt that never reached the
/// backend is corrected by the next answer instead of holding until the reset. Those sent while the attempt was in
/// flight still count: the backend admitted them after it reported.
/// </para>
/// <para>
/// When the reset passes before any answer reports the new window, the budget is assumed refilled to this process's
/// share of the limit (all of it when no peer shares the store), and its spends count against that: processes that
/// each took the whole refilled limit at the reset — where the callers told to come back all arrive — would together
/// spend it several times over. The first report of the new window replaces the assumption. A budget refilled
/// continuously (OpenAI's: its reset is the time until it is full, so reports of one "window" name different moments)
/// keeps the spends sent since its last report through that moment: they were not refilled by then. From then on it
/// refills them at its rate (what an own answer's count was short of the limit, over the time it said until full), a
/// window's worth per window, whether or not an answer reports it: a view that held them for ever would never send the
/// request whose answer could correct it (measured: with completions in flight, eight replicas left an OpenAI backend
/// idle for the last 90 s of a two-minute run, each holding more spends than its share of the limit).
/// </para>
/// </remarks>
internal partial struct BudgetCounter
{
    public const long Unknown = -1;

    private long _reported;
    private SpendLog? _spends;

    // The admission ticket of the own answer the count came from (0: a peer's report, or an answer of unknown admission).
    private long _countTicket;
    private bool _assumed;
    private bool _declared;

    // What reports told of the refill windows (their rules: BudgetCounter.Windows.cs).
    private TimeSpan _windowLongest;
    private TimeSpan _previousWindowLongest;
    private DateTimeOffset _windowResetAt;
    private TimeSpan _windowGap;
    private bool _refillsContinuously;

    // The moment the current window's first report named; whether a later one named it again, or another one.
    private DateTimeOffset _windowFirstResetAt;
    private bool _windowRepeated;
    private bool _windowMoved;

    // How many windows in a row ended steady (their moment named twice, never moved) one window after the one before.
    private int _steadySteps;

    // The continuous refill's state (its rules: BudgetCounter.ContinuousRefill.cs; the fields stay here, where a partial
    // struct's fields have one declaration order).
    // A continuous refill's rate (tokens or requests per second) as the latest own answer told it; 0 until one did.
    private double _refillPerSecond;

    // The latest spend outstanding when the current window began, if it was assumed (0 in a reported window): the spends
    // up to it are what that window's refill pays.
    private long _outstandingAtWindowStart;

    // For a budget refilled continuously that this process spends alone: the moment up to which its refill is counted,
    // and the part of a token counted but not yet whole (a view read every millisecond must not lose it to rounding).
    private DateTimeOffset _refilledAt;
    private double _refillFraction;

    // This process's share of a refilled limit, as last asked with (1: no peer spends the budget).
    private double _share;

    public BudgetCounter()
    {
        _share = 1;
        _reported = Unknown;
        Limit = Unknown;
    }

    /// <summary>Gets the limit last reported, or <see cref="Unknown"/>.</summary>
    public long Limit { get; private set; }

    /// <summary>Gets the moment the current window refills; the count holds until then.</summary>
    public DateTimeOffset ResetAt { get; private set; }

    /// <summary>Gets a value indicating whether the count is still the declared quota's: no answer has reported one yet.</summary>
    public readonly bool IsDeclared => _declared;

    /// <summary>Gets a value indicating whether the current window is assumed refilled, not yet reported.</summary>
    public readonly bool IsAssumed => _assumed;

    /// <summary>
    /// Gets the lowest count reported for the current window, or <see cref="Unknown"/> (also while the window is only
    /// assumed): what peers are told.
    /// </summary>
    public readonly long Reported => _assumed ? Unknown : _reported;

    /// <summary>
    /// Returns the count this process may still spend at <paramref name="now"/>, or <see cref="Unknown"/>: reported less
    /// its own spends since; past the reset, its share of the limit less its spends since the reset.
    /// </summary>
    public long Available(DateTimeOffset now, double share)
    {
        if (now >= ResetAt && !Roll(now, share))
        {
            // No window known to roll to (no reset delay, or no limit reported): the limit, as without a view.
            return Limit;
        }

        Refill(now, share);
        return _reported == Unknown ? Unknown : Math.Max(0, _reported - Spent);
    }

    /// <summary>Returns this process's share of the limit, or <see cref="Unknown"/>.</summary>
    public readonly long ShareOfLimit(double share) => Limit == Unknown ? Unknown : (long)(Limit * share);

    /// <summary>Merges a count reported by an answer — of this process when <paramref name="includedSpends"/> is given, else a peer's.</summary>
    /// <param name="reported">The remaining count the answer reported.</param>
    /// <param name="limit">The limit it reported, or <see cref="Unknown"/>.</param>
    /// <param name="resetAt">When its window refills.</param>
    /// <param name="reportedAt">
    /// When the backend decided the count and reset: an own answer's send (it admitted the attempt then), a peer's
    /// report's arrival.
    /// </param>
    /// <param name="now">The current time.</param>
    /// <param name="includedSpends">
    /// For an answer of this process, the ticket of the last of its spends the count includes (its attempt's own;
    /// <see cref="long.MaxValue"/>: all of them); for a peer's report, <see langword="null"/>: its count includes none.
    /// </param>
    public void Merge(long reported, long limit, DateTimeOffset resetAt, DateTimeOffset reportedAt, DateTimeOffset now, long? includedSpends)
    {
        var delay = resetAt - reportedAt;
        if (limit != Unknown)
        {
            Limit = limit;
        }

        if (includedSpends is not null && Limit != Unknown && reported < Limit && delay > TimeSpan.Zero)
        {
            // Only an own answer's delay is measured from the admission; a peer's report arrives late, its delay short.
            _refillPerSecond = (Limit - reported) / delay.TotalSeconds;
        }

        if (resetAt <= now)
        {
            // The window it describes is over: its count says nothing about the budget now.
            return;
        }

        if (_declared)
        {
            // The first report replaces the declared quota whatever it says; a declared limit stays the refill's when the
            // backend reports none.
            _declared = false;
            StartWindows(resetAt, delay);
            Replace(reported, resetAt, includedSpends, reportedAt);
            return;
        }

        var tolerance = Window / 2;
        if (_reported == Unknown || now >= ResetAt || resetAt > ResetAt + tolerance)
        {
            // A new window (or the first report): everything counted for the previous one is void.
            ObserveWindow(resetAt, delay);
            Replace(reported, resetAt, includedSpends, reportedAt);
            return;
        }

        if (resetAt < ResetAt - tolerance)
        {
            if (includedSpends is { } answer && IsNewerThanCount(answer))
            {
                // This process's answer is newer than the current window could be: that window came from an odd value.
                // (One admitted before the answer that set the count is older: a budget refilled continuously reports a
                // sooner full moment for a larger remaining count.)
                StartWindows(resetAt, delay);
                Replace(reported, resetAt, includedSpends, reportedAt);
            }

            // A peer's report of a window already over: older than what is known.
            return;
        }

        ObserveWindow(resetAt, delay);
        if (_assumed)
        {
            // The first report of a window this process only assumed refilled: the truth replaces the share. A peer's
            // count may not include this process's spends since the reset, which still count.
            _reported = reported;
            if (includedSpends is { } included)
            {
                _spends?.DropUpTo(included);
                _countTicket = TicketOf(included);
            }

            EnterReportedWindow(resetAt, reportedAt);
            return;
        }

        if (RefillsGradually)
        {
            MergeGrowing(reported, resetAt, reportedAt, now, includedSpends);
            return;
        }

        if (includedSpends is { } upTo && reported <= _reported)
        {
            _spends?.DropUpTo(upTo);
        }

        if (reported < _reported)
        {
            _reported = reported;
            _countTicket = includedSpends is { } newer ? TicketOf(newer) : _countTicket;
        }

        if (resetAt > ResetAt)
        {
            ResetAt = resetAt;
        }
    }

    /// <summary>
    /// Starts a budget nothing has reported yet from a declared per-minute <paramref name="limit"/>: this process's share
    /// of it, until a minute from now, then refilled every minute (<see cref="Roll"/>). Once an answer has reported the
    /// budget, the declaration is ignored; while it has not, a changed declaration (an options reload) is the new limit,
    /// and the current minute's room moves by the difference.
    /// </summary>
    public void Declare(long? limit, DateTimeOffset now, double share)
    {
        if (limit is not { } declared || (_reported != Unknown && !_declared))
        {
            return;
        }

        if (_declared)
        {
            // A reload that changes the quota changes the current minute too, by the difference: the requests already
            // sent in it stay spent.
            var before = ShareOfLimit(share);
            Limit = declared;
            _reported = Math.Max(0, _reported + ShareOfLimit(share) - before);
            return;
        }

        Limit = declared;

        _declared = true;
        _assumed = true;
        _reported = ShareOfLimit(share);
        _spends?.Clear();
        _outstandingAtWindowStart = 0;
        _windowLongest = DeclaredQuota.Window;
        ResetAt = now + DeclaredQuota.Window;
    }

    /// <summary>Takes an admitted request's cost off the current window; nothing when the budget is unknown.</summary>
    /// <param name="cost">The request's cost.</param>
    /// <param name="now">The current time.</param>
    /// <param name="share">This process's share of a refilled limit.</param>
    /// <param name="ticket">The admission's ticket: its answer's count includes the spends up to it.</param>
    public void Spend(long cost, DateTimeOffset now, double share, long ticket)
    {
        if (now >= ResetAt && !Roll(now, share))
        {
            return;
        }

        // The refill until now pays earlier spends, never this one.
        Refill(now, share);
        if (_reported != Unknown && cost > 0)
        {
            (_spends ??= new SpendLog()).Add(ticket, cost);
        }
    }

    private readonly long Spent => _spends?.Total ?? 0;

    /// <summary>
    /// Returns whether an own answer whose count includes the spends up to <paramref name="includedSpends"/> was admitted
    /// after the one the count came from (<see cref="long.MaxValue"/>, an answer of unknown admission, is taken as newer).
    /// </summary>
    private readonly bool IsNewerThanCount(long includedSpends) => includedSpends == long.MaxValue || includedSpends > _countTicket;

    private static long TicketOf(long includedSpends) => includedSpends == long.MaxValue ? 0 : includedSpends;

    /// <summary>Replaces the count; the spends this process made after an own answer's attempt still count.</summary>
    private void Replace(long reported, DateTimeOffset resetAt, long? includedSpends, DateTimeOffset reportedAt)
    {
        _reported = reported;
        _countTicket = includedSpends is { } own ? TicketOf(own) : 0;
        if (includedSpends is { } included)
        {
            _spends?.DropUpTo(included);
        }
        else
        {
            _spends?.Clear();
        }

        EnterReportedWindow(resetAt, reportedAt);
    }

    /// <summary>The count is a report's now: its window, reset at <paramref name="resetAt"/>, refilled as of <paramref name="reportedAt"/>.</summary>
    private void EnterReportedWindow(DateTimeOffset resetAt, DateTimeOffset reportedAt)
    {
        _assumed = false;
        _outstandingAtWindowStart = 0;
        CountRefillFrom(reportedAt);
        ResetAt = resetAt;
    }

    /// <summary>
    /// Moves a budget whose reset passed to the window it is in now, assumed refilled to this process's share.
    /// </summary>
    /// <returns><see langword="false"/> when there is no window to move to: no report, no limit or no reset delay known.</returns>
    private bool Roll(DateTimeOffset now, double share)
    {
        if (_reported == Unknown || Limit == Unknown || Window <= TimeSpan.Zero)
        {
            return false;
        }

        _share = share;
        var windows = ((now - ResetAt).Ticks / Window.Ticks) + 1;
        _reported = ShareOfLimit(share);
        if (!_refillsContinuously)
        {
            // A window's refill forgets what was spent in it. A continuous refill is full at its reported moment only if
            // nothing was sent since that report: what was still counts, until the refill pays it.
            _spends?.Clear();
        }
        else if (RefillsGradually)
        {
            if (!_assumed)
            {
                // Full at its reported moment but for the spends since the report, which the refill pays from then on.
                CountRefillFrom(ResetAt);
            }
        }
        else if (_spends is { } spends)
        {
            ForgiveRefilled(spends, windows, share);
        }

        _assumed = true;
        ResetAt += TimeSpan.FromTicks(Window.Ticks * windows);
        return true;
    }
}
