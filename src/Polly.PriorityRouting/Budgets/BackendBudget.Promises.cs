namespace Polly.PriorityRouting;

/// <content>
/// The promises: the demand told to come back (or waiting) per refill moment, the room it may be promised there, and the
/// foreground's claim on the refill under way that background requests and shared reservations leave free.
/// </content>
internal sealed partial class BackendBudget
{
    /// <summary>
    /// How many refill windows past the soonest reset the exhausted answers may promise: beyond that, overload is
    /// sustained and promising further only builds a queue of callers told to wait longer and longer (measured in
    /// docs/benchmarks.md: without the bound, p99 time to success reached 93 s at 3x load).
    /// </summary>
    public const int MaxPromisedWindows = 1;

    /// <summary>The most of a budget a shared reservation is told the foreground's claim takes: stores take a share below 1.</summary>
    private const double MaxPromisedShare = 0.99;

    /// <summary>
    /// How many refill moments the view remembers promises for: enough for every refill within the horizon and the
    /// waiters' own moments; past it the soonest is forgotten (its callers may then be promised again), never more.
    /// </summary>
    private const int MaxPromisedRefills = 16;

    // The demand promised per refill moment, soonest first: a cancelled waiter's room in one refill stays known (and
    // can be promised again) after later refills were promised.
    private readonly List<PromisedRefill> _promised = [];

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
            if (!Fits(At(at), cost, share, headroom))
            {
                // The next window is full too (the foreground expected there, for a background caller): promising it
                // anyway would over-promise a refill the admission there will not give.
                return earliest;
            }
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
