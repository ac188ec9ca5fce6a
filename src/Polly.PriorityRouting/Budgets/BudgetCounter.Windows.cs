namespace Polly.PriorityRouting;

/// <content>
/// What reports tell of the budget's refill windows: their length, the moment the current one ends, and whether the
/// budget refills in windows at all or continuously.
/// </content>
/// <remarks>
/// <para>
/// The window length is the gap between the reset moments of two windows reported one after the other, when that gap
/// is one window: at least the longest reset delay reported in them (a shorter one is one window seen twice) and less
/// than twice it (a longer one spans a window nobody reported). Until such a gap is seen, it is the longest reset delay
/// reported in the current window and the one before, which falls short of the window by the time its first request
/// came after its refill. Either way it follows the latest windows, and a corrected window forgets an odd value (one
/// long <c>x-ratelimit-reset-*</c> must not stretch every later window).
/// </para>
/// <para>
/// A budget refilled continuously is told by its reports' moments: its reset is the time until it is full, so each
/// answer names a later one (see <see cref="MomentSlack"/>). One such sign is not final: an answer admitted well after
/// its send (queued at the backend) names an earlier moment of a window-refilled budget too, and a view that took that
/// budget for continuous for the process's lifetime would keep every spend past each refill. So the view goes back to
/// windows after <see cref="SteadyStepsToWindows"/> steady steps in a row: a window whose moment was named again by a
/// later report and never moved, followed by the next one a window later (within <see cref="MomentSlack"/> of the
/// window length). A continuous budget cannot look like that while it is spent: each admitted request moves its moment
/// later by its cost over the refill rate, so a window named twice at one moment means next to nothing was spent in it,
/// and its next moment, one window on, means it was spent again only then — twice in a row. Any moved moment restarts
/// the count and marks the budget continuous again.
/// </para>
/// </remarks>
internal partial struct BudgetCounter
{
    /// <summary>
    /// Gets the length of a refill window: the latest gap between two windows reported one after the other, else the
    /// longest reset delay reported in the current window and the one before.
    /// </summary>
    public readonly TimeSpan Window => _windowGap > TimeSpan.Zero ? _windowGap : LongestReset;

    private readonly TimeSpan LongestReset => _windowLongest > _previousWindowLongest ? _windowLongest : _previousWindowLongest;

    /// <summary>Forgets the windows seen so far: the next ones are measured from this report.</summary>
    private void StartWindows(DateTimeOffset resetAt, TimeSpan delay)
    {
        _windowResetAt = resetAt;
        _windowLongest = delay;
        _previousWindowLongest = TimeSpan.Zero;
        _windowGap = TimeSpan.Zero;
        _steadySteps = 0;
        BeginWindow(resetAt);
    }

    /// <summary>The first report of a window: its moment is the one later reports of the window are held to.</summary>
    private void BeginWindow(DateTimeOffset resetAt)
    {
        _windowFirstResetAt = resetAt;
        _windowRepeated = false;
        _windowMoved = false;
    }

    /// <summary>
    /// Gets how many steady steps in a row bring a budget taken for continuous back to windows: two, so that one window
    /// named twice by chance (two tiny requests of a continuous budget) is not enough.
    /// </summary>
    private static int SteadyStepsToWindows => 2;

    /// <summary>
    /// Gets how far apart two reports may name one refill moment: a reset is counted from the attempt's send, while the
    /// backend counts it from its own admission a little later (or on its own clock, to the millisecond). Only a moment
    /// that moved by more marks a budget refilled continuously, which its view then counts up at the refill's rate: one
    /// window-refilled budget taken for continuous lets foreground requests through that the backend refuses (measured:
    /// 0.006 backend 429s per success at one replica of the classes scenario, from two windows 9.9999999 s apart).
    /// </summary>
    private readonly TimeSpan MomentSlack => Window / 10;

    /// <summary>Measures the window with a report: the longest reset delay of its window, and the gap from the window before.</summary>
    private void ObserveWindow(DateTimeOffset resetAt, TimeSpan delay)
    {
        if (_windowResetAt == default)
        {
            StartWindows(resetAt, delay);
            return;
        }

        var tolerance = Window / 2;
        if (resetAt > _windowResetAt + tolerance)
        {
            // The next window: one window after the last, unless that one was seen twice or one between went unreported.
            var gap = resetAt - _windowResetAt;
            var longest = delay > _windowLongest ? delay : _windowLongest;
            var slack = MomentSlack;
            var isStep = gap >= longest && gap < longest * 2;
            var steady = isStep && _windowRepeated && !_windowMoved && (_windowGap <= TimeSpan.Zero || Distance(gap, _windowGap) <= slack);
            if (isStep)
            {
                _windowGap = gap;
            }
            else if (gap < longest - slack)
            {
                // The moment it is full moved by clearly less than a window: a budget refilled continuously. (A little
                // less is one window, its moments measured a little apart; the longest reset stands for its length.)
                _refillsContinuously = true;
            }

            _steadySteps = steady ? Math.Min(_steadySteps + 1, SteadyStepsToWindows) : 0;
            if (_steadySteps >= SteadyStepsToWindows)
            {
                // Windows one window apart, each naming one moment: whatever looked continuous before was an odd report.
                _refillsContinuously = false;
            }

            _previousWindowLongest = _windowLongest;
            _windowLongest = delay;
            _windowResetAt = resetAt;
            BeginWindow(resetAt);
        }
        else if (resetAt >= _windowResetAt - tolerance)
        {
            // Reports of one window name one reset moment; a budget refilled continuously names a later one each time.
            var slack = MomentSlack;
            var moved = Distance(resetAt, _windowResetAt) > slack;
            _refillsContinuously |= moved;
            if (moved || Distance(resetAt, _windowFirstResetAt) > slack)
            {
                // Held to the window's first moment too: a continuous budget's small steps add up.
                _windowMoved = true;
            }
            else
            {
                _windowRepeated = true;
            }

            _windowLongest = delay > _windowLongest ? delay : _windowLongest;
            _windowResetAt = resetAt > _windowResetAt ? resetAt : _windowResetAt;
        }
    }

    private static TimeSpan Distance(DateTimeOffset a, DateTimeOffset b) => a > b ? a - b : b - a;

    private static TimeSpan Distance(TimeSpan a, TimeSpan b) => a > b ? a - b : b - a;
}
