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
/// <para>
/// Request classes live here, once (<see cref="RequestRoute.Headroom"/>): a background request (a non-zero
/// <c>headroom</c>) is admitted only while, after its cost, at least headroom × limit remains in each budget; its
/// promises leave that share of a refill free; and it sees every waiter's room, while a foreground request sees the
/// foreground waiters' only and is promised room ignoring the background's: foreground comes before background in a
/// refill, and a background waiter whose room a foreground request took finds it gone when released. Background requests
/// also leave the room promised to foreground callers in the refill under way (<see cref="ForegroundClaim"/>), and the
/// foreground demand expected until the reset (<see cref="ForegroundDemand"/>).
/// </para>
/// </remarks>
internal sealed partial class BackendBudget
{
    public const long Unknown = BudgetCounter.Unknown;

    /// <summary>A short, non-zero wait while released waiters spend what they hold (see <see cref="BudgetHold"/>).</summary>
    private static readonly TimeSpan HeldPromiseDelay = TimeSpan.FromMilliseconds(100);

    // Refill first, then the order the holds were made in.
    private static readonly Comparer<BudgetHold> HoldOrder = Comparer<BudgetHold>.Create(static (x, y) =>
        x.DueAt != y.DueAt ? x.DueAt.CompareTo(y.DueAt) : x.Order.CompareTo(y.Order));

    /// <summary>The token budget (<c>x-ratelimit-*-tokens</c>). A field: the counter is mutated in place.</summary>
    public BudgetCounter Tokens = new();

    /// <summary>The request budget (<c>x-ratelimit-*-requests</c>).</summary>
    public BudgetCounter Requests = new();

    // This process's foreground demand on each budget, which background admission leaves free until the reset.
    private ForegroundDemand _foregroundTokens;
    private ForegroundDemand _foregroundRequests;

    // The waiters' holds whose refill has not come yet, and the sums of those whose refill came: the foreground waiters'
    // (_dueHeld*), which hold back everyone, and the background waiters' apart, which hold back background requests only.
    private SortedSet<BudgetHold>? _pendingHolds;
    private long _dueHeldTokens;
    private long _dueHeldRequests;
    private long _dueBackgroundTokens;
    private long _dueBackgroundRequests;
    private long _holds;

    /// <summary>Gets the refill window the promises advance by: the longer of the two budgets' (see <see cref="BudgetCounter.Window"/>).</summary>
    public TimeSpan Window => Tokens.Window > Requests.Window ? Tokens.Window : Requests.Window;

    /// <summary>Gets or sets a value indicating whether the view dropped this budget (see <see cref="IsExpired"/>): it holds nothing new.</summary>
    public bool Evicted { get; set; }

    /// <summary>
    /// Returns how long until a request of <paramref name="cost"/> tokens fits: zero when it fits now or nothing is
    /// known. A request of cost 0 (its tokens are unknown: a <c>GET</c>, a body that is not JSON) is never held back by
    /// the token budget, as if none were known, and counts one request against the request budget like any other; a
    /// request larger than the whole limit (or than the share of it assumed after a reset) is never held back: only the
    /// backend can judge it. The room held for waiters whose refill came is not this request's, unless it is
    /// <paramref name="own"/>; a foreground request does not see the background waiters' room. A background request
    /// (<paramref name="headroom"/> &gt; 0) must leave <see cref="Kept">its headroom</see> of each budget's limit free
    /// after its cost: its token headroom holds even at cost 0; a budget whose limit is unknown keeps none.
    /// </summary>
    public TimeSpan TimeUntilAdmitted(long cost, DateTimeOffset now, double share, BudgetHold? own = null, double headroom = 0)
    {
        CountDueHolds(now);
        var background = headroom > 0;
        var heldTokens = _dueHeldTokens;
        var heldRequests = _dueHeldRequests;
        if (background)
        {
            var (claimedTokens, claimedRequests) = ForegroundClaim(now);
            heldTokens += _dueBackgroundTokens + claimedTokens;
            heldRequests += _dueBackgroundRequests + claimedRequests;
        }

        // Another budget's hold is read under its own lock only: compare the budget first.
        if (own is not null && own.Budget == this && own.IsDue && !own.Ended && (background || !own.Background))
        {
            heldTokens -= own.Cost;
            heldRequests--;
        }

        var wait = TimeSpan.Zero;
        var tokens = Tokens.Available(now, share);
        var largest = Tokens.IsAssumed ? Tokens.ShareOfLimit(share) : Tokens.Limit;
        var tokensKept = Kept(headroom, largest, cost) + (background ? ExpectedForeground(ref _foregroundTokens, ref Tokens, now, share, largest) : 0);
        if ((cost > 0 || background) && tokens != Unknown && tokens - heldTokens < cost + tokensKept && (largest == Unknown || cost <= largest))
        {
            wait = UntilRefill(Tokens.ResetAt, heldTokens, now);
        }

        var requests = Requests.Available(now, share);
        var requestsLimit = Requests.IsAssumed ? Requests.ShareOfLimit(share) : Requests.Limit;
        var requestsKept = Kept(headroom, requestsLimit, 1) + (background ? ExpectedForeground(ref _foregroundRequests, ref Requests, now, share, requestsLimit) : 0);
        if (requests != Unknown && requests - heldRequests < 1 + requestsKept && UntilRefill(Requests.ResetAt, heldRequests, now) is var requestsWait && requestsWait > wait)
        {
            wait = requestsWait;
        }

        return wait;
    }

    /// <summary>
    /// Admits a request of <paramref name="cost"/> tokens if it fits now, and takes its cost off in the same step (the
    /// caller holds this budget's lock): two requests can never both be admitted on room for one.
    /// </summary>
    /// <param name="cost">The request's estimated tokens.</param>
    /// <param name="now">The current time.</param>
    /// <param name="share">This process's share of a refilled limit.</param>
    /// <param name="own">The room the request holds as a released waiter, or <see langword="null"/>.</param>
    /// <param name="ticket">The admission's ticket (see <see cref="SpendLog"/>).</param>
    /// <param name="headroom">The share of the budget the request must leave free (a background request's); 0 for a foreground one.</param>
    /// <returns>Whether the request was admitted; <paramref name="own"/>, when in this budget, is spent by it.</returns>
    public bool TryTake(long cost, DateTimeOffset now, double share, BudgetHold? own, long ticket, double headroom = 0)
    {
        if (TimeUntilAdmitted(cost, now, share, own, headroom) != TimeSpan.Zero)
        {
            return false;
        }

        Spend(cost, now, share, own, ticket, headroom);
        return true;
    }

    /// <summary>
    /// Takes a request's cost off without asking: another judge admitted it (a shared reservation). A foreground request
    /// (<paramref name="headroom"/> 0) redeems the room promised to foreground callers in the refill under way.
    /// </summary>
    public void Spend(long cost, DateTimeOffset now, double share, BudgetHold? own, long ticket, double headroom = 0)
    {
        if (own is not null && own.Budget == this)
        {
            EndHold(own);
        }

        if (headroom <= 0)
        {
            RedeemForegroundClaim(cost, now);
        }

        Tokens.Spend(cost, now, share, ticket);
        Requests.Spend(1, now, share, ticket);
        if (headroom <= 0)
        {
            _foregroundTokens.Follow(now, Tokens.ResetAt, Tokens.Window);
            _foregroundTokens.Spend(cost, Tokens.Limit);
            _foregroundRequests.Follow(now, Requests.ResetAt, Requests.Window);
            _foregroundRequests.Spend(1, Requests.Limit);
        }
    }

    /// <summary>Starts the counters nothing has reported yet from the backend's declared quota; see <see cref="BudgetCounter.Declare"/>.</summary>
    public void Declare(DeclaredQuota quota, DateTimeOffset now, double share)
    {
        Tokens.Declare(quota.Tokens, now, share);
        Requests.Declare(quota.Requests, now, share);
    }

    /// <summary>Holds a waiter's room in the refill at <paramref name="dueAt"/>; <see langword="null"/> when the budget was evicted.</summary>
    public BudgetHold? AddHold(long cost, DateTimeOffset dueAt, bool background = false)
    {
        if (Evicted)
        {
            return null;
        }

        var hold = new BudgetHold(this, cost, dueAt, _holds++, background);
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
            CountDue(hold, -1);
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
        => now >= Tokens.ResetAt && now >= Requests.ResetAt && now >= LatestPromised(background: true) &&
           _dueHeldRequests == 0 && _dueBackgroundRequests == 0 && (_pendingHolds is null || _pendingHolds.Count == 0);

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
            CountDue(next, 1);
        }
    }

    /// <summary>Adds a due hold to (<paramref name="sign"/> 1), or takes it off (-1), the sums of its class.</summary>
    private void CountDue(BudgetHold hold, int sign)
    {
        if (hold.Background)
        {
            _dueBackgroundTokens += sign * hold.Cost;
            _dueBackgroundRequests += sign;
        }
        else
        {
            _dueHeldTokens += sign * hold.Cost;
            _dueHeldRequests += sign;
        }
    }

    /// <summary>
    /// The room a background request must leave free in a budget whose limit (or this process's share of it) is
    /// <paramref name="limit"/>: headroom × limit, rounded up; none for a foreground request or an unknown limit. A
    /// request too large to leave it is admitted on a full budget only (it never fits otherwise).
    /// </summary>
    private static long Kept(double headroom, long limit, long cost)
        => headroom <= 0 || limit == Unknown ? 0 : Math.Max(0, Math.Min((long)Math.Ceiling(headroom * limit), limit - cost));

    /// <summary>
    /// The foreground demand a background request leaves free in <paramref name="counter"/> until its reset
    /// (<see cref="ForegroundDemand"/>), in the counter's terms: this process's own when the count is its share of an
    /// assumed refill; scaled to every process's (each taken to demand alike) when the count is a reported one, which
    /// every process spends; none for an unknown limit.
    /// </summary>
    private static long ExpectedForeground(ref ForegroundDemand demand, ref BudgetCounter counter, DateTimeOffset now, double share, long limit)
    {
        if (limit == Unknown)
        {
            return 0;
        }

        demand.Follow(now, counter.ResetAt, counter.Window);
        var expected = demand.Expected(limit);
        return counter.IsAssumed || share >= 1 ? expected : Math.Min(limit, (long)Math.Ceiling(expected / share));
    }
}
