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
    }

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
            if (gap >= longest && gap < longest * 2)
            {
                _windowGap = gap;
            }
            else if (gap < longest - MomentSlack)
            {
                // The moment it is full moved by clearly less than a window: a budget refilled continuously. (A little
                // less is one window, its moments measured a little apart; the longest reset stands for its length.)
                _refillsContinuously = true;
            }

            _previousWindowLongest = _windowLongest;
            _windowLongest = delay;
            _windowResetAt = resetAt;
        }
        else if (resetAt >= _windowResetAt - tolerance)
        {
            // Reports of one window name one reset moment; a budget refilled continuously names a later one each time.
            _refillsContinuously |= (resetAt > _windowResetAt ? resetAt - _windowResetAt : _windowResetAt - resetAt) > MomentSlack;
            _windowLongest = delay > _windowLongest ? delay : _windowLongest;
            _windowResetAt = resetAt > _windowResetAt ? resetAt : _windowResetAt;
        }
    }
}
