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
internal sealed class BackendBudget
{
    public const long Unknown = BudgetCounter.Unknown;

    /// <summary>
    /// How many refill windows past the soonest reset the exhausted answers may promise: beyond that, overload is
    /// sustained and promising further only builds a queue of callers told to wait longer and longer (measured in
    /// docs/benchmarks.md: without the bound, p99 time to success reached 93 s at 3x load).
    /// </summary>
    public const int MaxPromisedWindows = 1;

    /// <summary>The most of a budget a shared reservation is told the foreground's claim takes: stores take a share below 1.</summary>
    private const double MaxPromisedShare = 0.99;

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
            _foregroundTokens.Spend(cost);
            _foregroundRequests.Follow(now, Requests.ResetAt, Requests.Window);
            _foregroundRequests.Spend(1);
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
    /// Promises a request of <paramref name="cost"/> tokens a moment, no sooner than <paramref name="earliest"/>, at
    /// which the demand already promised plus this one still fits the refilled budget: the soonest reset, else the next
    /// window (up to <see cref="MaxPromisedWindows"/> past it); when those are full, <paramref name="earliest"/> itself,
    /// reserving nothing.
    /// </summary>
    /// <param name="cost">The request's estimated tokens.</param>
    /// <param name="earliest">The soonest moment any backend of the request frees up.</param>
    /// <param name="share">This process's share of a refilled limit.</param>
    /// <param name="reserved">Whether the moment holds room for the request (<see langword="false"/> when every window is full).</param>
    /// <param name="headroom">The request's <see cref="RequestRoute.Headroom"/>: a foreground request (0) is promised room as if no background one were.</param>
    public DateTimeOffset Promise(long cost, DateTimeOffset earliest, double share, out bool reserved, double headroom = 0)
    {
        reserved = false;
        var latest = LatestPromised(headroom > 0);
        var at = latest < earliest ? earliest : latest;
        if (!Fits(At(at), cost, share, headroom))
        {
            if (Window <= TimeSpan.Zero || at + Window > earliest + (Window * MaxPromisedWindows))
            {
                // Every window within the horizon is promised: the queue must not grow without bound under sustained
                // overload. This caller gets the plain soonest moment, reserving nothing.
                return earliest;
            }

            at += Window;
        }

        reserved = Take(at, cost, headroom > 0);
        return reserved ? at : earliest;
    }

    /// <summary>
    /// Promises a request room in the refill at <paramref name="at"/> only — the moment this backend can next admit —
    /// when the demand already promised there leaves room; never a later window. Lets a waiter take another backend's
    /// sooner refill rather than the soonest backend's next one (see <see cref="BudgetExhaustion"/>). Before the latest
    /// refill promised, only a refill already promised (whose room a cancelled waiter may have given up) is promised again.
    /// </summary>
    public bool TryPromiseAt(long cost, DateTimeOffset at, double share, double headroom = 0)
        => (at >= LatestPromised(headroom > 0) || IndexOf(at) >= 0) && Fits(At(at), cost, share, headroom) && Take(at, cost, headroom > 0);

    /// <summary>
    /// Takes back the room promised at <paramref name="promisedAt"/> to a caller who will not come (a waiter that
    /// cancelled): whoever is promised that refill next may have it, even after later refills were promised.
    /// </summary>
    public void Withdraw(long cost, DateTimeOffset promisedAt, bool background = false)
    {
        var index = IndexOf(promisedAt);
        if (index >= 0)
        {
            _promised[index] = _promised[index].Add(-cost, -1, background);
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

    /// <summary>
    /// The room promised to foreground callers (sent back with an exhausted answer, or waiting) in the refills under way
    /// — those that came, within a window of their moment — that foreground admissions have not yet redeemed. Background
    /// requests leave it free: without it, background requests arriving first at the refill take the room the
    /// foreground was told to come back for. Bounded by the promises (at most <see cref="MaxPromisedRefills"/> moments,
    /// each within the refilled budget); it ends when the callers come back or their window passes.
    /// </summary>
    public (long Tokens, long Requests) ForegroundClaim(DateTimeOffset now)
    {
        long tokens = 0, requests = 0;
        for (var i = 0; i < _promised.Count && _promised[i].At <= now; i++)
        {
            if (now < _promised[i].At + Window)
            {
                tokens += _promised[i].Tokens;
                requests += _promised[i].Requests;
            }
        }

        return (tokens, requests);
    }

    /// <summary>
    /// The share of each budget a background request must leave free in a shared reservation (whose store knows the
    /// headroom, not the promises) beyond its headroom: this process's <see cref="ForegroundClaim"/> as a share of its
    /// share of the limit (every process promises its share, so the claims of all add up to the same share of the whole
    /// limit), below 1; 0 for an unknown limit. Passed apart from the headroom: a request too large to leave its
    /// headroom is admitted on a full budget, never into room promised to others.
    /// </summary>
    public double PromisedShare(DateTimeOffset now, double share)
    {
        var (tokens, requests) = ForegroundClaim(now);
        var claimed = Math.Max(ShareClaimed(tokens, Tokens.ShareOfLimit(share)), ShareClaimed(requests, Requests.ShareOfLimit(share)));
        return Math.Min(claimed, MaxPromisedShare);

        static double ShareClaimed(long claimed, long limit) => claimed <= 0 || limit == Unknown || limit <= 0 ? 0 : (double)claimed / limit;
    }

    /// <summary>Counts a foreground admission against the soonest unredeemed promise of the refills under way.</summary>
    private void RedeemForegroundClaim(long cost, DateTimeOffset now)
    {
        for (var i = 0; i < _promised.Count && _promised[i].At <= now; i++)
        {
            if (now < _promised[i].At + Window && _promised[i].Requests > 0)
            {
                _promised[i] = _promised[i].Add(-cost, -1, background: false);
                return;
            }
        }
    }

    /// <summary>
    /// The latest refill promised to the request's class: a foreground request is promised room ignoring the
    /// background's, so only the foreground promises push it later; a background request comes after every promise.
    /// </summary>
    private DateTimeOffset LatestPromised(bool background)
    {
        for (var i = _promised.Count - 1; i >= 0; i--)
        {
            if (background || _promised[i].Requests > 0 || _promised[i].Tokens > 0)
            {
                return _promised[i].At;
            }
        }

        return DateTimeOffset.MinValue;
    }

    private int IndexOf(DateTimeOffset at) => _promised.FindIndex(refill => refill.At == at);

    /// <summary>The demand already promised the refill at <paramref name="at"/>: none when nothing was.</summary>
    private PromisedRefill At(DateTimeOffset at) => IndexOf(at) is var index and >= 0 ? _promised[index] : new PromisedRefill(at, 0, 0, 0, 0);

    /// <summary>Takes a request's room in the refill at <paramref name="at"/>; false when no more refills can be remembered and this one is the soonest.</summary>
    private bool Take(DateTimeOffset at, long cost, bool background)
    {
        var index = IndexOf(at);
        if (index >= 0)
        {
            _promised[index] = _promised[index].Add(cost, 1, background);
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

        _promised.Insert(insertAt, new PromisedRefill(at, 0, 0, 0, 0).Add(cost, 1, background));
        return true;
    }

    // Each process promises its share of a refill: the callers of every process sharing the store come back at once. A
    // foreground request counts the foreground demand only; a background one counts all of it and leaves its headroom,
    // and the foreground demand this process expects in the window the refill starts (as its admission there will).
    private bool Fits(PromisedRefill promised, long cost, double share, double headroom)
    {
        var background = headroom > 0;
        var (tokens, requests) = background
            ? (promised.Tokens + promised.BackgroundTokens, promised.Requests + promised.BackgroundRequests)
            : (promised.Tokens, promised.Requests);
        var tokensLimit = Tokens.ShareOfLimit(share);
        var requestsLimit = Requests.ShareOfLimit(share);
        var expectedTokens = background ? ExpectedForegroundAt(_foregroundTokens, Tokens.Window, promised.At, tokensLimit) : 0;
        var expectedRequests = background ? ExpectedForegroundAt(_foregroundRequests, Requests.Window, promised.At, requestsLimit) : 0;
        return (tokens == 0 && requests == 0 && expectedTokens == 0 && expectedRequests == 0) ||
               ((Tokens.Limit == Unknown || tokens + cost + Kept(headroom, tokensLimit, cost) + expectedTokens <= tokensLimit) &&
                (Requests.Limit == Unknown || requests + 1 + Kept(headroom, requestsLimit, 1) + expectedRequests <= requestsLimit));
    }

    /// <summary>
    /// The foreground demand a background request leaves free in the window a refill at <paramref name="at"/> starts: this
    /// process's own, as against a refill's count, which is its share (see <see cref="ExpectedForeground"/>).
    /// </summary>
    private static long ExpectedForegroundAt(in ForegroundDemand demand, TimeSpan window, DateTimeOffset at, long limit)
        => limit == Unknown ? 0 : demand.ExpectedAt(at, window, limit);

    /// <summary>The demand promised one refill moment: the foreground's, and the background's apart.</summary>
    private readonly record struct PromisedRefill(DateTimeOffset At, long Tokens, long Requests, long BackgroundTokens, long BackgroundRequests)
    {
        /// <summary>Adds (or, negative, takes back) one request's demand to its class, never below nothing.</summary>
        public PromisedRefill Add(long cost, int requests, bool background) => background
            ? this with { BackgroundTokens = Math.Max(0, BackgroundTokens + cost), BackgroundRequests = Math.Max(0, BackgroundRequests + requests) }
            : this with { Tokens = Math.Max(0, Tokens + cost), Requests = Math.Max(0, Requests + requests) };
    }
}
