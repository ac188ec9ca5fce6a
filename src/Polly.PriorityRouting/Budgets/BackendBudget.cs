namespace Polly.PriorityRouting;

/// <summary>
/// What the answers of one backend (or one partition of it) said about its rate-limit budgets, what this process spent
/// since, and the demand already told to come back when it refills. Guarded by its own lock.
/// </summary>
/// <remarks>
/// A budget read from an answer holds until its reset moment and is then taken as full again (its limit — this
/// process's share of it when peers share the store —, or unknown when the limit was never reported): a step, not a
/// slope. That never over-estimates a budget refilled in windows (Azure checks per-minute quotas over short windows); a
/// budget refilled continuously (OpenAI's) is under-estimated until its reset moment: within a window the view never
/// raises a count, since a higher count may be an older report (see <see cref="BudgetCounter"/>). Every method taking a
/// <c>share</c> takes this process's share of a refilled limit (1 alone, 1/n with n processes on the store).
/// </remarks>
internal sealed class BackendBudget
{
    public const long Unknown = BudgetCounter.Unknown;

    /// <summary>
    /// How many refill windows past the soonest reset the exhausted answers may promise: beyond that, overload is
    /// sustained and promising further only builds a queue of callers told to wait longer and longer (measured in
    /// docs/benchmarks.md: without the bound, p99 time to success reached 93 s at 3x load).
    /// </summary>
    public const int MaxPromisedWindows = 1;

    /// <summary>A short, non-zero wait while released waiters spend what they hold (see <see cref="BudgetHold"/>).</summary>
    private static readonly TimeSpan HeldPromiseDelay = TimeSpan.FromMilliseconds(100);

    // Refill first, then the order the holds were made in.
    private static readonly Comparer<BudgetHold> HoldOrder = Comparer<BudgetHold>.Create(static (x, y) =>
        x.DueAt != y.DueAt ? x.DueAt.CompareTo(y.DueAt) : x.Order.CompareTo(y.Order));

    /// <summary>The token budget (<c>x-ratelimit-*-tokens</c>). A field: the counter is mutated in place.</summary>
    public BudgetCounter Tokens = new();

    /// <summary>The request budget (<c>x-ratelimit-*-requests</c>).</summary>
    public BudgetCounter Requests = new();

    // The waiters' holds whose refill has not come yet, and the sums of those whose refill came.
    private SortedSet<BudgetHold>? _pendingHolds;
    private long _dueHeldTokens;
    private long _dueHeldRequests;
    private long _holds;

    /// <summary>Gets the refill window the promises advance by: the longer of the two budgets' (see <see cref="BudgetCounter.Window"/>).</summary>
    public TimeSpan Window => Tokens.Window > Requests.Window ? Tokens.Window : Requests.Window;

    /// <summary>
    /// How many refill moments the view remembers promises for: enough for every refill within the horizon and the
    /// waiters' own moments; past it the soonest is forgotten (its callers may then be promised again), never more.
    /// </summary>
    private const int MaxPromisedRefills = 16;

    // The demand promised per refill moment, soonest first: a cancelled waiter's room in one refill stays known (and
    // can be promised again) after later refills were promised.
    private readonly List<PromisedRefill> _promised = [];

    /// <summary>Gets or sets a value indicating whether the view dropped this budget (see <see cref="IsExpired"/>): it holds nothing new.</summary>
    public bool Evicted { get; set; }

    /// <summary>
    /// Returns how long until a request of <paramref name="cost"/> tokens fits: zero when it fits now or nothing is
    /// known. A request of cost 0 (its tokens are unknown: a <c>GET</c>, a body that is not JSON) is never held back by
    /// the token budget, as if none were known, and counts one request against the request budget like any other; a
    /// request larger than the whole limit (or than the share of it assumed after a reset) is never held back: only the
    /// backend can judge it. The room held for waiters whose refill came is not this request's, unless it is
    /// <paramref name="own"/>.
    /// </summary>
    public TimeSpan TimeUntilAdmitted(long cost, DateTimeOffset now, double share, BudgetHold? own = null)
    {
        CountDueHolds(now);
        var (heldTokens, heldRequests) = (_dueHeldTokens, _dueHeldRequests);

        // Another budget's hold is read under its own lock only: compare the budget first.
        if (own is not null && own.Budget == this && own.IsDue && !own.Ended)
        {
            heldTokens -= own.Cost;
            heldRequests--;
        }

        var wait = TimeSpan.Zero;
        var tokens = Tokens.Available(now, share);
        var largest = Tokens.IsAssumed ? Tokens.ShareOfLimit(share) : Tokens.Limit;
        if (cost > 0 && tokens != Unknown && tokens - heldTokens < cost && (largest == Unknown || cost <= largest))
        {
            wait = UntilRefill(Tokens.ResetAt, heldTokens, now);
        }

        var requests = Requests.Available(now, share);
        if (requests != Unknown && requests - heldRequests < 1 && UntilRefill(Requests.ResetAt, heldRequests, now) is var requestsWait && requestsWait > wait)
        {
            wait = requestsWait;
        }

        return wait;
    }

    /// <summary>
    /// Admits a request of <paramref name="cost"/> tokens if it fits now, and takes its cost off in the same step (the
    /// caller holds this budget's lock): two requests can never both be admitted on room for one.
    /// </summary>
    /// <returns>Whether the request was admitted; <paramref name="own"/>, when in this budget, is spent by it.</returns>
    public bool TryTake(long cost, DateTimeOffset now, double share, BudgetHold? own)
    {
        if (TimeUntilAdmitted(cost, now, share, own) != TimeSpan.Zero)
        {
            return false;
        }

        Spend(cost, now, share, own);
        return true;
    }

    /// <summary>Takes a request's cost off without asking: another judge admitted it (a shared reservation).</summary>
    public void Spend(long cost, DateTimeOffset now, double share, BudgetHold? own)
    {
        if (own is not null && own.Budget == this)
        {
            EndHold(own);
        }

        Tokens.Spend(cost, now, share);
        Requests.Spend(1, now, share);
    }

    /// <summary>Starts the counters nothing has reported yet from the backend's declared quota; see <see cref="BudgetCounter.Declare"/>.</summary>
    public void Declare(DeclaredQuota quota, DateTimeOffset now, double share)
    {
        Tokens.Declare(quota.Tokens, now, share);
        Requests.Declare(quota.Requests, now, share);
    }

    /// <summary>Holds a waiter's room in the refill at <paramref name="dueAt"/>; <see langword="null"/> when the budget was evicted.</summary>
    public BudgetHold? AddHold(long cost, DateTimeOffset dueAt)
    {
        if (Evicted)
        {
            return null;
        }

        var hold = new BudgetHold(this, cost, dueAt, _holds++);
        (_pendingHolds ??= new SortedSet<BudgetHold>(HoldOrder)).Add(hold);
        return hold;
    }

    /// <summary>Moves a waiter's room to an earlier refill (a cancelled waiter's room passes to it).</summary>
    public void MoveHold(BudgetHold hold, DateTimeOffset dueAt)
    {
        if (hold.Ended || hold.IsDue)
        {
            return;
        }

        _pendingHolds!.Remove(hold);
        hold.DueAt = dueAt;
        _pendingHolds.Add(hold);
    }

    /// <summary>Ends a hold: what it held is free again. Idempotent.</summary>
    public void EndHold(BudgetHold hold)
    {
        if (hold.Ended)
        {
            return;
        }

        hold.Ended = true;
        if (hold.IsDue)
        {
            _dueHeldTokens -= hold.Cost;
            _dueHeldRequests--;
        }
        else
        {
            _pendingHolds!.Remove(hold);
        }
    }

    /// <summary>
    /// Returns whether the budget says nothing about <paramref name="now"/> or later: both windows are over, and no
    /// promise or waiter's room lies ahead. The view may then drop it; the backend's next answer starts it again.
    /// </summary>
    public bool IsExpired(DateTimeOffset now)
        => now >= Tokens.ResetAt && now >= Requests.ResetAt && now >= LatestPromised &&
           _dueHeldRequests == 0 && (_pendingHolds is null || _pendingHolds.Count == 0);

    /// <summary>
    /// Promises a request of <paramref name="cost"/> tokens a moment, no sooner than <paramref name="earliest"/>, at
    /// which the demand already promised plus this one still fits the refilled budget: the soonest reset, else the next
    /// window (up to <see cref="MaxPromisedWindows"/> past it); when those are full, <paramref name="earliest"/> itself,
    /// reserving nothing.
    /// </summary>
    /// <param name="cost">The request's estimated tokens.</param>
    /// <param name="earliest">The soonest moment any backend of the request frees up.</param>
    /// <param name="share">This process's share of a refilled limit.</param>
    /// <param name="reserved">Whether the moment holds room for the request (<see langword="false"/> when every window is full).</param>
    public DateTimeOffset Promise(long cost, DateTimeOffset earliest, double share, out bool reserved)
    {
        reserved = false;
        var at = LatestPromised < earliest ? earliest : LatestPromised;
        if (!Fits(At(at), cost, share))
        {
            if (Window <= TimeSpan.Zero || at + Window > earliest + (Window * MaxPromisedWindows))
            {
                // Every window within the horizon is promised: the queue must not grow without bound under sustained
                // overload. This caller gets the plain soonest moment, reserving nothing.
                return earliest;
            }

            at += Window;
        }

        reserved = Take(at, cost);
        return reserved ? at : earliest;
    }

    /// <summary>
    /// Promises a request room in the refill at <paramref name="at"/> only — the moment this backend can next admit —
    /// when the demand already promised there leaves room; never a later window. Lets a waiter take another backend's
    /// sooner refill rather than the soonest backend's next one (see <see cref="BudgetExhaustion"/>). Before the latest
    /// refill promised, only a refill already promised (whose room a cancelled waiter may have given up) is promised again.
    /// </summary>
    public bool TryPromiseAt(long cost, DateTimeOffset at, double share)
        => (at >= LatestPromised || IndexOf(at) >= 0) && Fits(At(at), cost, share) && Take(at, cost);

    /// <summary>
    /// Takes back the room promised at <paramref name="promisedAt"/> to a caller who will not come (a waiter that
    /// cancelled): whoever is promised that refill next may have it, even after later refills were promised.
    /// </summary>
    public void Withdraw(long cost, DateTimeOffset promisedAt)
    {
        var index = IndexOf(promisedAt);
        if (index >= 0)
        {
            var refill = _promised[index];
            _promised[index] = new PromisedRefill(promisedAt, Math.Max(0, refill.Tokens - cost), Math.Max(0, refill.Requests - 1));
        }
    }

    /// <summary>
    /// How long a budget that cannot admit stays so: until its reset; past it, a budget short only because of held
    /// promises is short for a moment — the waiters holding them are about to spend them.
    /// </summary>
    private static TimeSpan UntilRefill(DateTimeOffset resetAt, long held, DateTimeOffset now)
        => now < resetAt ? resetAt - now : held > 0 ? HeldPromiseDelay : TimeSpan.Zero;

    /// <summary>Counts the holds whose refill has come against everyone else from now on, whenever the queue's timer fires.</summary>
    private void CountDueHolds(DateTimeOffset now)
    {
        while (_pendingHolds is { Count: > 0 } pending && pending.Min is { } next && next.DueAt <= now)
        {
            pending.Remove(next);
            next.IsDue = true;
            _dueHeldTokens += next.Cost;
            _dueHeldRequests++;
        }
    }

    private DateTimeOffset LatestPromised => _promised.Count == 0 ? DateTimeOffset.MinValue : _promised[^1].At;

    private int IndexOf(DateTimeOffset at) => _promised.FindIndex(refill => refill.At == at);

    /// <summary>The demand already promised the refill at <paramref name="at"/>: none when nothing was.</summary>
    private PromisedRefill At(DateTimeOffset at) => IndexOf(at) is var index and >= 0 ? _promised[index] : new PromisedRefill(at, 0, 0);

    /// <summary>Takes a request's room in the refill at <paramref name="at"/>; false when no more refills can be remembered and this one is the soonest.</summary>
    private bool Take(DateTimeOffset at, long cost)
    {
        var index = IndexOf(at);
        if (index >= 0)
        {
            var refill = _promised[index];
            _promised[index] = new PromisedRefill(at, refill.Tokens + cost, refill.Requests + 1);
            return true;
        }

        var insertAt = _promised.FindIndex(refill => refill.At > at) is var later and >= 0 ? later : _promised.Count;
        if (_promised.Count == MaxPromisedRefills)
        {
            if (insertAt == 0)
            {
                return false;
            }

            _promised.RemoveAt(0);
            insertAt--;
        }

        _promised.Insert(insertAt, new PromisedRefill(at, cost, 1));
        return true;
    }

    // Each process promises its share of a refill: the callers of every process sharing the store come back at once.
    private bool Fits(PromisedRefill promised, long cost, double share)
        => (promised.Tokens == 0 && promised.Requests == 0) ||
           ((Tokens.Limit == Unknown || promised.Tokens + cost <= Tokens.ShareOfLimit(share)) &&
            (Requests.Limit == Unknown || promised.Requests + 1 <= Requests.ShareOfLimit(share)));

    /// <summary>The demand promised one refill moment.</summary>
    private readonly record struct PromisedRefill(DateTimeOffset At, long Tokens, long Requests);
}
