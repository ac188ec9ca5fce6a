namespace Polly.PriorityRouting;

/// <summary>
/// The bounded in-strategy wait of <see cref="PriorityRoutingStrategyOptions.MaxQueueWait"/>: a caller that no backend
/// can take, and whom the budget view promised room in a refill within what is left of the bound
/// (<see cref="BudgetReservation"/>), waits here instead of being answered 429, and is released when that refill comes —
/// first come, first served.
/// </summary>
/// <remarks>
/// <para>
/// Order: the promises themselves are first come, first served (<see cref="BackendBudget.Promise"/> fills a refill in
/// the order callers ask, then the next one). A waiter's room is held in its budget (<see cref="BudgetHold"/>) from the
/// refill's moment on — not from when this queue's timer fires, which may be late — until the waiter spends it or gives
/// it up: a new arrival can never take the capacity that returned for the waiters; it is promised room after theirs,
/// and waits behind them or — beyond the bound — is answered with the moment it was promised. With request classes
/// (<see cref="PriorityRoutingHints.Background"/>) this holds within a class; foreground requests come before background
/// waiters (the rule is <see cref="BackendBudget"/>'s).
/// </para>
/// <para>
/// Release: one timer releases the waiters whose refill came, all at once. A released waiter never continues on the
/// timer's thread: an asynchronous caller continues on the thread pool, and a synchronous caller
/// (<c>HttpClient.Send</c>) waits on its own thread and continues there — so the waiters of one refill call their
/// backends together, whatever the calls cost, and a synchronous caller takes no second thread.
/// </para>
/// <para>
/// Cancellation: a cancelled waiter leaves the queue at once and holds nothing; its room goes to the first waiter
/// promised a later refill of the same budget that fits in it (moved up to the cancelled one's refill), else back to the
/// promises. Disposing the queue releases every waiter to try once more.
/// </para>
/// <para>
/// Bounded: a waiter is accepted only when its promised refill comes within what is left of the bound (the bound is
/// per execution, over all its waits), and at most <see cref="MaxWaiters"/> wait at once.
/// </para>
/// </remarks>
internal sealed class WaitQueue : IDisposable
{
    /// <summary>
    /// The most callers that may wait at once: promises bound the queue by the refills' size, but requests of unknown
    /// cost (0) are bounded only by a request budget, and small requests against a large budget hardly at all.
    /// </summary>
    public const int MaxWaiters = 4096;

    private static readonly TimeSpan Infinite = System.Threading.Timeout.InfiniteTimeSpan;

    // Refill first, then arrival: the release order.
    private static readonly Comparer<Waiter> ReleaseOrder = Comparer<Waiter>.Create(static (x, y) =>
        x.Reservation.DueAt != y.Reservation.DueAt ? x.Reservation.DueAt.CompareTo(y.Reservation.DueAt) : x.Arrival.CompareTo(y.Arrival));

    private readonly TimeProvider _timeProvider;
    private readonly BackendBudgets _budgets;
    private readonly SortedSet<Waiter> _waiters = new(ReleaseOrder);
    private readonly ITimer _timer;
    private long _arrivals;
    private bool _disposed;

    public WaitQueue(TimeProvider timeProvider, BackendBudgets budgets, TimeSpan maxWait)
    {
        _timeProvider = timeProvider;
        _budgets = budgets;
        MaxWait = maxWait;
        _timer = timeProvider.CreateTimer(static state => ((WaitQueue)state!).ReleaseDue(), this, Infinite, Infinite);
    }

    /// <summary>Gets the bound on one execution's total wait.</summary>
    public TimeSpan MaxWait { get; }

    /// <summary>Gets how many callers are waiting now.</summary>
    public int Count
    {
        get
        {
            lock (_waiters)
            {
                return _waiters.Count;
            }
        }
    }

    /// <summary>
    /// Waits until the reservation's refill when it comes within <paramref name="waited"/>'s remainder of the bound.
    /// </summary>
    /// <param name="reservation">The room the budget view promised the caller.</param>
    /// <param name="waited">How long this execution has already waited here.</param>
    /// <param name="synchronous">Whether the caller is synchronous: it then waits on its own thread.</param>
    /// <param name="continueOnCapturedContext">Whether to continue on the caller's context.</param>
    /// <param name="cancellationToken">The caller's cancellation.</param>
    /// <returns>
    /// How the wait ended and, when released, the caller's room held in the budget: the caller spends it at its next
    /// admission on that budget, and releases it (<see cref="BudgetHold.Release"/>) in any case once that admission is
    /// decided.
    /// </returns>
    public async ValueTask<(WaitOutcome Outcome, BudgetHold? Hold)> WaitAsync(
        BudgetReservation reservation,
        TimeSpan waited,
        bool synchronous,
        bool continueOnCapturedContext,
        CancellationToken cancellationToken)
    {
        var now = _timeProvider.GetUtcNow();
        var wait = reservation.DueAt - now;
        if (wait <= TimeSpan.Zero || waited + wait > MaxWait || cancellationToken.IsCancellationRequested)
        {
            return (WaitOutcome.NotQueued, null);
        }

        var waiter = new Waiter(this, reservation, _budgets.Hold(reservation));
        lock (_waiters)
        {
            if (_disposed || _waiters.Count >= MaxWaiters)
            {
                waiter.Hold?.Release();
                return (WaitOutcome.NotQueued, null);
            }

            waiter.Arrival = _arrivals++;
            _waiters.Add(waiter);
            if (_waiters.Min == waiter)
            {
                _timer.Change(wait, Infinite);
            }
        }

        // Cancelled since the check, the callback runs at once and the waiter leaves the queue.
        var registration = cancellationToken.UnsafeRegister(static (state, _) => ((Waiter)state!).Queue.Cancel((Waiter)state!), waiter);

        // A synchronous caller (sync-over-async in HttpClient.Send) is blocked anyway: it waits on its own thread rather
        // than taking a thread-pool thread for a continuation that would block again in its synchronous send.
        var outcome = synchronous
            ? waiter.Released.Task.GetAwaiter().GetResult()
            : await waiter.Released.Task.ConfigureAwait(continueOnCapturedContext);

        // Never Dispose here: this may run inside the cancellation callback, which Dispose would wait for.
        registration.Unregister();
        return (outcome, outcome == WaitOutcome.Released ? waiter.Hold : null);
    }

    /// <summary>Releases every waiter to try once more: the pipeline is going away (an options reload).</summary>
    public void Dispose()
    {
        List<Waiter> released;
        lock (_waiters)
        {
            _disposed = true;
            released = [.. _waiters];
            _waiters.Clear();
        }

        _timer.Dispose();
        foreach (var waiter in released)
        {
            waiter.Released.TrySetResult(WaitOutcome.Released);
        }
    }

    private void Cancel(Waiter waiter)
    {
        lock (_waiters)
        {
            if (!_waiters.Remove(waiter))
            {
                // Already released: the caller's next admission decides what becomes of its room.
                return;
            }

            if (NextFitting(waiter) is { } next)
            {
                MoveUp(next, waiter.Reservation.DueAt);
            }
            else
            {
                _budgets.Withdraw(waiter.Reservation);
            }
        }

        waiter.Hold?.Release();
        waiter.Released.TrySetResult(WaitOutcome.Canceled);
    }

    /// <summary>The first waiter promised a later refill of the same budget whose request fits the room <paramref name="leaving"/> gives up.</summary>
    private Waiter? NextFitting(Waiter leaving)
    {
        foreach (var waiter in _waiters)
        {
            // Of the same class: a room promised under one class's rule is never moved to the other.
            if (waiter.Reservation.DueAt > leaving.Reservation.DueAt &&
                waiter.Reservation.Key == leaving.Reservation.Key &&
                waiter.Reservation.IsBackground == leaving.Reservation.IsBackground &&
                waiter.Reservation.Cost <= leaving.Reservation.Cost)
            {
                return waiter;
            }
        }

        return null;
    }

    /// <summary>Moves a waiter up to an earlier refill: its room in the later one goes back to the promises.</summary>
    private void MoveUp(Waiter waiter, DateTimeOffset dueAt)
    {
        _waiters.Remove(waiter);
        _budgets.Withdraw(waiter.Reservation);
        waiter.Reservation = waiter.Reservation with { DueAt = dueAt };
        if (waiter.Hold is { } hold)
        {
            BackendBudgets.MoveHold(hold, dueAt);
        }

        _waiters.Add(waiter);
        if (_waiters.Min == waiter && !_disposed)
        {
            var wait = dueAt - _timeProvider.GetUtcNow();
            _timer.Change(wait > TimeSpan.Zero ? wait : TimeSpan.Zero, Infinite);
        }
    }

    private void ReleaseDue()
    {
        List<Waiter>? released = null;
        lock (_waiters)
        {
            var now = _timeProvider.GetUtcNow();
            while (_waiters.Min is { } head && head.Reservation.DueAt <= now)
            {
                _waiters.Remove(head);
                (released ??= []).Add(head);
            }

            if (!_disposed && _waiters.Min is { } next)
            {
                _timer.Change(next.Reservation.DueAt - now, Infinite);
            }
        }

        // Outside the lock. Their rooms are held since the refill came: the order they are admitted in does not matter.
        if (released is not null)
        {
            foreach (var waiter in released)
            {
                waiter.Released.TrySetResult(WaitOutcome.Released);
            }
        }
    }

    private sealed class Waiter(WaitQueue queue, BudgetReservation reservation, BudgetHold? hold)
    {
        public WaitQueue Queue { get; } = queue;

        /// <summary>Gets or sets the room promised: moved to an earlier refill when a cancelled waiter's room passes to this one.</summary>
        public BudgetReservation Reservation { get; set; } = reservation;

        public BudgetHold? Hold { get; } = hold;

        public long Arrival { get; set; }

        // Never run a released waiter's continuation on the thread that releases it (the timer's, or a canceller's).
        public TaskCompletionSource<WaitOutcome> Released { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
