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
/// The window length is the longest reset delay reported in the current window and the one before: it grows at once
/// and shrinks back within two windows, and a corrected window forgets the odd value.
/// </para>
/// <para>
/// This process's own spends are counted apart and dropped at its next answer that is at least as low as everything
/// reported: that answer's count includes them (the backend deducts at admission), so an estimate too high or an
/// attempt that never reached the backend is corrected by the next answer instead of holding until the reset.
/// </para>
/// <para>
/// When the reset passes before any answer reports the new window, the budget is assumed refilled to this process's
/// share of the limit (all of it when no peer shares the store), and its spends count against that: processes that
/// each took the whole refilled limit at the reset — where the callers told to come back all arrive — would together
/// spend it several times over. The first report of the new window replaces the assumption.
/// </para>
/// </remarks>
internal struct BudgetCounter
{
    public const long Unknown = -1;

    private long _reported;
    private long _spent;
    private bool _assumed;
    private bool _declared;
    private TimeSpan _windowLongest;
    private TimeSpan _previousWindowLongest;

    public BudgetCounter()
    {
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

    /// <summary>Gets the length of a refill window: the longest reset delay reported in the current window and the one before.</summary>
    public readonly TimeSpan Window => _windowLongest > _previousWindowLongest ? _windowLongest : _previousWindowLongest;

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

        return _reported == Unknown ? Unknown : Math.Max(0, _reported - _spent);
    }

    /// <summary>Returns this process's share of the limit, or <see cref="Unknown"/>.</summary>
    public readonly long ShareOfLimit(double share) => Limit == Unknown ? Unknown : (long)(Limit * share);

    /// <summary>Merges a count reported by an answer — of this process when <paramref name="ownAnswer"/>, else a peer's.</summary>
    /// <param name="reported">The remaining count the answer reported.</param>
    /// <param name="limit">The limit it reported, or <see cref="Unknown"/>.</param>
    /// <param name="resetAt">When its window refills.</param>
    /// <param name="now">The current time.</param>
    /// <param name="ownAnswer">Whether the answer is this process's own (its count includes this process's spends).</param>
    public void Merge(long reported, long limit, DateTimeOffset resetAt, DateTimeOffset now, bool ownAnswer)
    {
        if (limit != Unknown)
        {
            Limit = limit;
        }

        var delay = resetAt - now;
        if (_declared)
        {
            // The first report replaces the declared quota whatever it says; a declared limit stays the refill's when the
            // backend reports none.
            _declared = false;
            _previousWindowLongest = TimeSpan.Zero;
            _windowLongest = delay;
            Replace(reported, resetAt);
            return;
        }

        var tolerance = Window / 2;
        if (_reported == Unknown || now >= ResetAt || resetAt > ResetAt + tolerance)
        {
            // A new window (or the first report): everything counted for the previous one is void.
            _previousWindowLongest = _windowLongest;
            _windowLongest = delay;
            Replace(reported, resetAt);
            return;
        }

        if (resetAt < ResetAt - tolerance)
        {
            if (ownAnswer)
            {
                // This process's answer is newer than the current window could be: that window came from an odd value.
                _windowLongest = delay;
                Replace(reported, resetAt);
            }

            // A peer's report of a window already over: older than what is known.
            return;
        }

        if (delay > _windowLongest)
        {
            _windowLongest = delay;
        }

        if (_assumed)
        {
            // The first report of a window this process only assumed refilled: the truth replaces the share. A peer's
            // count may not include this process's spends since the reset, which still count.
            _reported = reported;
            _spent = ownAnswer ? 0 : _spent;
            _assumed = false;
            ResetAt = resetAt;
            return;
        }

        if (ownAnswer && reported <= _reported)
        {
            _spent = 0;
        }

        if (reported < _reported)
        {
            _reported = reported;
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
        _spent = 0;
        _windowLongest = DeclaredQuota.Window;
        ResetAt = now + DeclaredQuota.Window;
    }

    /// <summary>Takes an admitted request's cost off the current window; nothing when the budget is unknown.</summary>
    public void Spend(long cost, DateTimeOffset now, double share)
    {
        if (now >= ResetAt && !Roll(now, share))
        {
            return;
        }

        if (_reported != Unknown)
        {
            _spent += cost;
        }
    }

    private void Replace(long reported, DateTimeOffset resetAt)
    {
        _reported = reported;
        _spent = 0;
        _assumed = false;
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

        var windows = ((now - ResetAt).Ticks / Window.Ticks) + 1;
        _reported = ShareOfLimit(share);
        _spent = 0;
        _assumed = true;
        ResetAt += TimeSpan.FromTicks(Window.Ticks * windows);
        return true;
    }
}
