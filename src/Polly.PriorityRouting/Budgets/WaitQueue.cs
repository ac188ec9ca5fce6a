namespace Polly.PriorityRouting;

/// <summary>
/// The bounded in-strategy wait of <see cref="PriorityRoutingStrategyOptions.MaxQueueWait"/>: a caller that no backend
/// can take, and whom the budget view promised room in a refill within the bound (<see cref="BudgetReservation"/>),
/// waits here instead of being answered 429, and is released when that refill comes — first come, first served.
/// </summary>
/// <remarks>
/// <para>
/// Order: the promises themselves are first come, first served (<see cref="BackendBudget.Promise"/> fills a refill in
/// the order callers ask, then the next one), and waiters are released in (refill, arrival) order by one timer. A
/// released waiter's room is held from everyone else's admission until it is admitted
/// (<see cref="BackendBudgets.Hold"/>), so that a new arrival cannot take the capacity that returned for the waiters; a
/// new arrival that finds the budget spent is promised room after theirs, and waits behind them or — beyond the bound —
/// is answered with the moment it was promised.
/// </para>
/// <para>
/// Released waiters continue synchronously on the timer's callback (timer threads have no synchronization context, so
/// the runtime runs the continuations inline), one after the other, each until its next attempt is sent (its first
/// asynchronous step): each is admitted before the next is released, and on a virtual clock advanced from a thread
/// without a synchronization context the release happens inside the clock's advance, which keeps runs deterministic.
/// </para>
/// <para>
/// Bounded: a waiter is accepted only when its promised refill comes within what is left of the bound (the bound is
/// per execution, over all its waits), and at most <see cref="MaxWaiters"/> wait at once. A cancelled waiter leaves the
/// queue at once, gives its room in the refill back to the promises and holds nothing; disposing the queue releases
/// every waiter to try once more.
/// </para>
/// </remarks>
internal sealed class WaitQueue : IDisposable
{
    /// <summary>
    /// The most callers that may wait at once: promises bound the queue by the refills' size, but requests of unknown
    /// cost (0) are bounded only by a request budget, which a backend may not report.
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
    /// Waits until the reservation's refill when it comes within <paramref name="waited"/>'s remainder of the bound;
    /// on release the caller's room is already free for its own admission.
    /// </summary>
    /// <param name="reservation">The room the budget view promised the caller.</param>
    /// <param name="waited">How long this execution has already waited here.</param>
    /// <param name="continueOnCapturedContext">Whether to continue on the caller's context.</param>
    /// <param name="cancellationToken">The caller's cancellation.</param>
    public async ValueTask<WaitOutcome> WaitAsync(BudgetReservation reservation, TimeSpan waited, bool continueOnCapturedContext, CancellationToken cancellationToken)
    {
        var now = _timeProvider.GetUtcNow();
        var wait = reservation.DueAt - now;
        if (wait <= TimeSpan.Zero || waited + wait > MaxWait || cancellationToken.IsCancellationRequested)
        {
            return WaitOutcome.NotQueued;
        }

        var waiter = new Waiter(this, reservation);
        lock (_waiters)
        {
            if (_disposed || _waiters.Count >= MaxWaiters)
            {
                return WaitOutcome.NotQueued;
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

        var outcome = await waiter.Released.Task.ConfigureAwait(continueOnCapturedContext);

        // Never Dispose here: this may run inside the cancellation callback, which Dispose would wait for.
        registration.Unregister();
        if (waiter.Held)
        {
            // The caller is admitted next, against the room it was promised.
            _budgets.Unhold(reservation.Key, reservation.Cost);
        }

        return outcome;
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
                // Already released: it holds its room until its continuation frees it.
                return;
            }
        }

        _budgets.Withdraw(waiter.Reservation);
        waiter.Released.TrySetResult(WaitOutcome.Canceled);
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
                _budgets.Hold(head.Reservation.Key, head.Reservation.Cost);
                head.Held = true;
                (released ??= []).Add(head);
            }

            if (!_disposed && _waiters.Min is { } next)
            {
                _timer.Change(next.Reservation.DueAt - now, Infinite);
            }
        }

        // Outside the lock, in order: each continues synchronously until its next attempt is sent.
        if (released is not null)
        {
            foreach (var waiter in released)
            {
                waiter.Released.TrySetResult(WaitOutcome.Released);
            }
        }
    }

    private sealed class Waiter(WaitQueue queue, BudgetReservation reservation)
    {
        public WaitQueue Queue { get; } = queue;

        public BudgetReservation Reservation { get; } = reservation;

        public long Arrival { get; set; }

        public bool Held { get; set; }

        // Continuations run synchronously on purpose: see the class remarks.
        public TaskCompletionSource<WaitOutcome> Released { get; } = new();
    }
}
