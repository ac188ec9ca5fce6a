namespace Polly.PriorityRouting;

/// <summary>
/// The budget view: per backend and partition, the rate-limit budgets the answers reported
/// (<c>x-ratelimit-remaining-*</c>, <c>-limit-*</c>, <c>-reset-*</c>), less what this process has sent since. Admission
/// reads it to skip a backend that cannot take a request of a given cost; the exhausted answer spreads the callers it
/// sends back over the refills. One view per store (see <see cref="SharedBackendState"/>), so that every pipeline
/// sharing a store shares it; a store that implements <see cref="IBackendBudgetStore"/> also carries the counts its
/// answers report to the views of other processes, and theirs to this one (see <see cref="BudgetCounter"/> for how
/// reports merge). Spends stay in the process that made them.
/// </summary>
/// <remarks>Bounded: the keys and their eviction are <see cref="BudgetTable"/>'s.</remarks>
internal sealed partial class BackendBudgets
{
    /// <inheritdoc cref="BudgetTable.MaxEntries"/>
    public const int MaxEntries = BudgetTable.MaxEntries;

    private readonly BudgetTable _budgets = new();
    private readonly IBackendBudgetStore? _store;
    private int _subscribed;
    private long _tickets;

    /// <summary>Initializes a view of this process only.</summary>
    public BackendBudgets()
    {
    }

    /// <summary>Initializes a view that shares its answers' budgets through <paramref name="store"/>; see <see cref="SubscribeOnce"/>.</summary>
    /// <param name="store">The store that carries observations between processes.</param>
    public BackendBudgets(IBackendBudgetStore store) => _store = store;

    /// <summary>Subscribes to the store's observations of other processes, merged at <paramref name="timeProvider"/>'s now; once.</summary>
    public void SubscribeOnce(TimeProvider timeProvider)
    {
        if (_store is not null && Interlocked.Exchange(ref _subscribed, 1) == 0)
        {
            _store.SubscribeToBudgets((key, observation) => Merge(key, observation, timeProvider.GetUtcNow()));
        }
    }

    /// <inheritdoc cref="BudgetTable.Count"/>
    public int Count => _budgets.Count;

    /// <summary>
    /// Gets this process's share of a refilled limit: 1, or 1/n when n processes share budgets through the store.
    /// </summary>
    private double Share => _store is { PeerCount: > 0 and var peers } ? 1.0 / (1 + peers) : 1.0;

    /// <summary>Gets a value indicating whether no backend has reported a budget yet: admission has nothing to check.</summary>
    public bool IsEmpty => _budgets.IsEmpty;

    /// <summary>
    /// Returns whether a request of <paramref name="cost"/> tokens fits the key's budget now (a selection's read; the
    /// admission itself is <see cref="TryTake(BackendStateKey, long, DateTimeOffset, BudgetHold?, DeclaredQuota?, double)"/>). Allocation-free.
    /// </summary>
    /// <param name="key">The backend (or partition).</param>
    /// <param name="cost">The request's estimated tokens; 0 (unknown) is held back by a spent request budget only.</param>
    /// <param name="now">The current time.</param>
    /// <param name="own">The room the request holds as a released waiter, or <see langword="null"/>.</param>
    /// <param name="quota">
    /// The backend's declared quota, or <see langword="null"/> (see
    /// <see cref="TryTake(BackendStateKey, long, DateTimeOffset, BudgetHold?, DeclaredQuota?, double)"/>).
    /// </param>
    /// <param name="headroom">The request's <see cref="RequestRoute.Headroom"/>: 0 for a foreground request.</param>
    public bool CanAdmit(BackendStateKey key, long cost, DateTimeOffset now, BudgetHold? own = null, DeclaredQuota? quota = null, double headroom = 0)
    {
        if (!_budgets.TryGet(key, out var budget))
        {
            return true;
        }

        lock (budget)
        {
            DeclareIfAny(budget, quota, now);
            return budget.TimeUntilAdmitted(cost, now, Share, own, headroom) == TimeSpan.Zero;
        }
    }

    /// <summary>Returns how long until a request of <paramref name="cost"/> tokens (and <paramref name="headroom"/>) fits the key's budget.</summary>
    public TimeSpan TimeUntilAdmitted(BackendStateKey key, long cost, DateTimeOffset now, DeclaredQuota? quota = null, double headroom = 0)
    {
        if (!_budgets.TryGet(key, out var budget))
        {
            return TimeSpan.Zero;
        }

        lock (budget)
        {
            DeclareIfAny(budget, quota, now);
            return budget.TimeUntilAdmitted(cost, now, Share, headroom: headroom);
        }
    }

    /// <summary>
    /// Admits a request of <paramref name="cost"/> tokens on the key's budget and takes its cost off until the backend's
    /// answer reports it, in one step under the budget's lock: concurrent requests are admitted on the room there is,
    /// and not one more. A released waiter's <paramref name="own"/> room in this budget is spent by it.
    /// </summary>
    /// <param name="key">The backend (or partition).</param>
    /// <param name="cost">The request's estimated tokens.</param>
    /// <param name="now">The current time.</param>
    /// <param name="own">The room the request holds as a released waiter, or <see langword="null"/>.</param>
    /// <param name="quota">
    /// The backend's declared quota, or <see langword="null"/>: a key nothing has reported yet starts from it (a budget
    /// that does not exist yet is full, so the selection's read need not create it).
    /// </param>
    /// <param name="headroom">The request's <see cref="RequestRoute.Headroom"/>: 0 for a foreground request.</param>
    /// <returns>Whether the request was admitted: always when the key has no budget.</returns>
    public bool TryTake(BackendStateKey key, long cost, DateTimeOffset now, BudgetHold? own = null, DeclaredQuota? quota = null, double headroom = 0)
        => TryTake(key, cost, now, out _, own, quota, headroom);

    /// <inheritdoc cref="TryTake(BackendStateKey, long, DateTimeOffset, BudgetHold?, DeclaredQuota?, double)"/>
    /// <param name="key">The backend (or partition).</param>
    /// <param name="cost">The request's estimated tokens.</param>
    /// <param name="now">The current time.</param>
    /// <param name="ticket">
    /// The admission's ticket, for its answer (see <see cref="Observe(BackendStateKey, in BackendReservationReport, long?)"/>): 0 when it spent nothing (the key had no budget).
    /// </param>
    /// <param name="own">The room the request holds as a released waiter, or <see langword="null"/>.</param>
    /// <param name="quota">The backend's declared quota, or <see langword="null"/>.</param>
    /// <param name="headroom">The request's <see cref="RequestRoute.Headroom"/>: 0 for a foreground request.</param>
    public bool TryTake(BackendStateKey key, long cost, DateTimeOffset now, out long ticket, BudgetHold? own = null, DeclaredQuota? quota = null, double headroom = 0)
    {
        ticket = 0;
        BackendBudget? budget;
        if (quota is not null)
        {
            if (_budgets.GetOrAdd(key, now) is not { } declared)
            {
                // The view is full: the backend routes as without a view.
                return true;
            }

            budget = declared;
            lock (budget)
            {
                DeclareIfAny(budget, quota, now);
                return TryTake(budget, cost, now, own, headroom, out ticket);
            }
        }

        if (!_budgets.TryGet(key, out budget))
        {
            return true;
        }

        lock (budget)
        {
            return TryTake(budget, cost, now, own, headroom, out ticket);
        }
    }

    // Under the budget's lock: tickets are handed out in the order of admission.
    private bool TryTake(BackendBudget budget, long cost, DateTimeOffset now, BudgetHold? own, double headroom, out long ticket)
    {
        ticket = Interlocked.Increment(ref _tickets);
        return budget.TryTake(cost, now, Share, own, ticket, headroom);
    }

    /// <summary>
    /// Takes a request's cost off the key's budget without asking: a shared reservation admitted it (see
    /// <see cref="IBackendReservationStore"/>), and this process's view still counts its own spends.
    /// </summary>
    /// <param name="key">The backend (or partition).</param>
    /// <param name="cost">The request's estimated tokens.</param>
    /// <param name="now">The current time.</param>
    /// <param name="ticket">The admission's ticket, for its answer (see <see cref="Observe(BackendStateKey, in BackendReservationReport, long?)"/>): 0 when it spent nothing.</param>
    /// <param name="own">The room the request holds as a released waiter, or <see langword="null"/>.</param>
    /// <param name="quota">The backend's declared quota, or <see langword="null"/>.</param>
    /// <param name="headroom">The request's <see cref="RequestRoute.Headroom"/>: 0 for a foreground request.</param>
    public void Spend(BackendStateKey key, long cost, DateTimeOffset now, out long ticket, BudgetHold? own = null, DeclaredQuota? quota = null, double headroom = 0)
    {
        ticket = 0;
        if ((quota is null ? (_budgets.TryGet(key, out var budget) ? budget : null) : _budgets.GetOrAdd(key, now)) is not { } known)
        {
            return;
        }

        lock (known)
        {
            DeclareIfAny(known, quota, now);
            ticket = Interlocked.Increment(ref _tickets);
            known.Spend(cost, now, Share, own, ticket, headroom);
        }
    }

    /// <summary>
    /// Every read of a budget applies the backend's declaration first (the caller holds the budget's lock): a reload that
    /// raised a declared quota must be seen by the selection's read too, which would otherwise never let a request reach
    /// the admission that applies it.
    /// </summary>
    private void DeclareIfAny(BackendBudget budget, DeclaredQuota? quota, DateTimeOffset now)
    {
        if (quota is not null)
        {
            budget.Declare(quota, now, Share);
        }
    }

    /// <summary>
    /// Promises a caller sent back with an exhausted answer the first moment, no sooner than
    /// <paramref name="earliest"/>, at which the key's refilled budget still has room after the demand already sent
    /// back; <paramref name="earliest"/> itself when nothing is known about the key.
    /// </summary>
    public DateTimeOffset Promise(BackendStateKey key, long cost, DateTimeOffset earliest)
        => Promise(key, cost, earliest, out _);

    /// <inheritdoc cref="Promise(BackendStateKey, long, DateTimeOffset)"/>
    /// <param name="key">The backend (or partition) the caller is sent back to.</param>
    /// <param name="cost">The request's estimated tokens.</param>
    /// <param name="earliest">The soonest moment any backend of the request frees up.</param>
    /// <param name="reserved">Whether the moment holds room for this request in the key's refill.</param>
    /// <param name="headroom">The request's <see cref="RequestRoute.Headroom"/>: 0 for a foreground request.</param>
    public DateTimeOffset Promise(BackendStateKey key, long cost, DateTimeOffset earliest, out bool reserved, double headroom = 0)
    {
        reserved = false;
        if (!_budgets.TryGet(key, out var budget))
        {
            return earliest;
        }

        lock (budget)
        {
            return budget.Promise(cost, earliest, Share, out reserved, headroom);
        }
    }

    /// <summary>
    /// Returns the share of the limit a background request (<paramref name="headroom"/> &gt; 0) leaves free in the
    /// shared store beyond its headroom: the room this process promised foreground callers in the refill under way (see
    /// <see cref="BackendBudget.PromisedShare"/>); 0 for a foreground request, which reads nothing.
    /// </summary>
    public double PromisedShare(BackendStateKey key, double headroom, DateTimeOffset now)
    {
        if (headroom <= 0 || !_budgets.TryGet(key, out var budget))
        {
            return 0;
        }

        lock (budget)
        {
            return budget.PromisedShare(now, Share);
        }
    }

    /// <summary>Promises room in the key's refill at <paramref name="at"/> only; see <see cref="BackendBudget.TryPromiseAt"/>.</summary>
    public bool TryPromiseAt(BackendStateKey key, long cost, DateTimeOffset at, double headroom = 0)
    {
        if (!_budgets.TryGet(key, out var budget))
        {
            return false;
        }

        lock (budget)
        {
            return budget.TryPromiseAt(cost, at, Share, headroom);
        }
    }

    /// <summary>
    /// Holds the room a caller waiting in the strategy was promised (<paramref name="reservation"/>) from everyone
    /// else's admission once its refill comes; see <see cref="BudgetHold"/>.
    /// </summary>
    /// <returns>The hold, or <see langword="null"/> when the key has no budget (then nothing was promised either).</returns>
    public BudgetHold? Hold(BudgetReservation reservation)
    {
        if (!_budgets.TryGet(reservation.Key, out var budget))
        {
            return null;
        }

        lock (budget)
        {
            return budget.AddHold(reservation.Cost, reservation.DueAt, reservation.IsBackground);
        }
    }

    /// <summary>Moves a waiter's hold to the earlier refill whose room a cancelled waiter gave up.</summary>
    public static void MoveHold(BudgetHold hold, DateTimeOffset dueAt)
    {
        lock (hold.Budget)
        {
            hold.Budget.MoveHold(hold, dueAt);
        }
    }

    /// <summary>A waiter cancelled before its refill came, and nobody waiting took its room: the room goes to whoever asks next.</summary>
    public void Withdraw(BudgetReservation reservation)
    {
        if (!_budgets.TryGet(reservation.Key, out var budget))
        {
            return;
        }

        lock (budget)
        {
            budget.Withdraw(reservation.Cost, reservation.DueAt, reservation.IsBackground);
        }
    }
}
