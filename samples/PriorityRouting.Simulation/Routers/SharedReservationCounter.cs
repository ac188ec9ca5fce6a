using Polly.PriorityRouting;

namespace PriorityRouting.Simulation.Routers;

/// <summary>
/// The shared budgets of "ours (reserved)", one per backend and partition, every replica reserving against them through
/// the library's <see cref="IBackendReservationStore"/> (<see cref="ReservingReplicaStateStore"/>, one round trip
/// away): what the Redis store holds, as a plain counter. An admission reserves its estimated cost atomically before the
/// request is sent; what answers report (remaining, limit, reset — measured from when the request was sent) seeds and
/// corrects it.
/// </summary>
/// <remarks>
/// Like the library's budget view, a budget is taken as full again at its reset (a step); the window it advances by is
/// the gap between two windows reported one after the other, else the longest reset delay reported. A budget refilled
/// continuously (OpenAI's: two reports moments apart name full moments less than a window apart) is a flow once a report
/// gave it a rate (<c>SharedReservationCounter.Flow.cs</c>, the Redis script's rule too). A report corrects
/// the count to what the backend had spent when it admitted the request plus what was reserved since (later in the
/// store's order: many replicas reserve within one tick), so an answer that arrives seconds late loses nothing reserved
/// meanwhile. Until a backend has reported a budget, nothing is refused (<see cref="BackendReservationStatus.Unknown"/>:
/// each replica's own view decides). Bounded: per backend, the reservations of the last <see cref="History"/> only.
/// A background reservation (a non-zero headroom) leaves free, besides its headroom, the foreground demand expected
/// until the reset (<see cref="ForegroundDemand"/>: what the foreground can spend at its recent peak rate, the rule the
/// Redis script keeps too); refused only for that demand, it is told when the foreground can no longer spend it.
/// </remarks>
internal sealed partial class SharedReservationCounter
{
    /// <summary>How long reservations are remembered to correct the count with a late answer (longer than any completion).</summary>
    public static readonly TimeSpan History = TimeSpan.FromMinutes(3);

    /// <summary>
    /// How long after its moment claimed room waits for its claimant. The Redis store's constant
    /// (<c>RedisReservations</c>, passed to its script), mirrored here.
    /// </summary>
    public static readonly TimeSpan Grace = TimeSpan.FromSeconds(2);

    /// <summary>How far ahead a refusal looks for a refill with room (the Redis store's constant, mirrored).</summary>
    public static readonly TimeSpan Horizon = TimeSpan.FromSeconds(60);

    /// <summary>How many refills of a budget a refusal looks at, at most (the Redis store's constant, mirrored).</summary>
    public const int MaxRefills = 4;

    /// <summary>
    /// How many claim moments a budget keeps at most (the Redis store's bound, mirrored): a claim joins the entry its
    /// refill already has, so a budget holds one per refill claimed; a claim that would add one more is not made (the
    /// request is told its refill, unclaimed), and the claims already made stay.
    /// </summary>
    public const int MaxClaimMoments = 16;

    /// <summary>How far apart two reset moments may be and still describe one window.</summary>
    private static readonly TimeSpan SameWindow = TimeSpan.FromMilliseconds(50);

    private readonly Dictionary<BackendStateKey, Budget> _budgets = [];
    private readonly TimeSpan? _maxAnswerDelay;
    private long _sequence;

    /// <param name="maxAnswerDelay">
    /// <see langword="null"/>: a report is taken as the backend's state when it admitted the request, its reset measured
    /// from the send. Otherwise only answers that arrive within this delay of their send correct the counter, their reset
    /// measured from their arrival (the later of the two readings): right whichever moment the backend reports.
    /// </param>
    public SharedReservationCounter(TimeSpan? maxAnswerDelay = null) => _maxAnswerDelay = maxAnswerDelay;

    /// <summary>Gets how many reservations the counter refused.</summary>
    public long Refused { get; private set; }

    /// <summary>
    /// Reserves <paramref name="cost"/> on <paramref name="key"/>'s budget, leaving <paramref name="headroom"/> of its
    /// limit free (no more than the limit less the amount: a request too large to leave it goes on a full budget only)
    /// and, strictly, <paramref name="promised"/> of it; refused, tells how long until it refills; unknown (but counted)
    /// while no answer reported the budget. The Redis script's rule, claims aside (a request that never claims).
    /// </summary>
    public BackendReservation Reserve(BackendStateKey key, long cost, double headroom, double promised, DateTimeOffset now)
        => Reserve(key, cost, headroom, promised, claimant: 0, now);

    /// <summary>
    /// Reserves as the other overload does, on behalf of <paramref name="claimant"/> (the request's fingerprint; 0 never
    /// claims): the claims rule of the Redis script (<c>ReservationScripts.Reserve</c>, the same-named tests). Claimed
    /// room due in the current window is left free for its claimant, which redeems it when it comes back at or after
    /// its moment (within <see cref="Grace"/>); a refused request is told the soonest refill (within
    /// <see cref="Horizon"/>) whose room it fits beside the claims already made there, and a foreground one with a
    /// claimant claims it.
    /// </summary>
    public BackendReservation Reserve(BackendStateKey key, long cost, double headroom, double promised, long claimant, DateTimeOffset now)
    {
        var budget = GetOrAdd(key);
        budget.Roll(now, _sequence);
        budget.Prune(now);
        if (budget.Flow is { } flow)
        {
            // The roll still ends the foreground's windows (its recent peak, for background requests), as the script's prelude does.
            return ReserveFromFlow(budget, flow, key, cost, headroom, promised, claimant, now);
        }

        budget.DropExpiredClaims(now);

        if (claimant != 0 && budget.TryGetClaim(claimant, out var claimedAt))
        {
            if (now < claimedAt)
            {
                // Back before its moment: its room stays set aside, and it is told the time left to it.
                Refused++;
                return BackendReservation.Claimed(key, cost, claimedAt - now);
            }

            // Its moment came: its room is free again, for it to take as an ordinary grant.
            budget.RemoveClaim(claimant);
        }

        var amount = budget.AmountOf(cost);
        var known = budget.Limit >= 0 && budget.WindowEnd > now;

        // A background request (a headroom) also leaves free what the foreground of every replica is expected to spend
        // until the reset, strictly like the room promised. A request larger than the whole budget is the backend's to judge.
        var expected = headroom > 0 && known ? budget.Foreground.Expected(budget.Limit, budget.WindowEnd - now) : 0;
        var kept = (long)(Math.Max(0, Math.Min(Math.Ceiling(headroom * budget.Limit), budget.Limit - amount)) + Math.Ceiling(promised * budget.Limit));

        // Room claimed in the current window is its claimants', until their grace ends.
        var claimed = known ? budget.ClaimsDueInCurrentWindow() : 0;
        if (known && budget.Judges(amount, headroom, promised) && budget.Reserved + amount > budget.Limit - kept - expected - claimed)
        {
            Refused++;
            var room = budget.Limit - kept - claimed - budget.Reserved - amount;
            if (room >= 0)
            {
                // Held back only by what the foreground can spend before the reset: until it no longer can.
                var untilLeft = budget.Foreground.UntilExpectedAtMost(room, budget.WindowEnd - now);
                return BackendReservation.Refused(key, cost, untilLeft > TimeSpan.Zero ? untilLeft : budget.WindowEnd - now);
            }

            return RefuseAtSoonestRoom(budget, key, cost, amount, headroom, claimant, now);
        }

        budget.Reserved += amount;
        return Admit(budget, key, cost, amount, headroom, now, known);
    }

    /// <summary>
    /// Admits a request (in windows or from a flow): a foreground one counts towards the foreground's demand, and every
    /// one joins the recent reservations a late answer corrects with.
    /// </summary>
    private BackendReservation Admit(Budget budget, BackendStateKey key, long cost, long amount, double headroom, DateTimeOffset now, bool known = true)
    {
        var sequence = ++_sequence;
        if (headroom <= 0)
        {
            budget.Foreground.Spend(amount, now, budget.Limit);
        }

        budget.Recent.Enqueue((sequence, now, amount));
        return known
            ? BackendReservation.Granted(key, cost, now, sequence, amount)
            : BackendReservation.Unknown(key, cost, now, sequence, amount);
    }

    /// <summary>
    /// Gives back the room <paramref name="claimant"/> claimed on <paramref name="key"/> (the request will not come for
    /// it): the Redis script's <c>Unclaim</c>, the same rule.
    /// </summary>
    public void Unclaim(BackendStateKey key, long claimant, DateTimeOffset now)
    {
        var budget = GetOrAdd(key);
        if (budget.Flow is { } flow)
        {
            flow.GiveBack(claimant);
            return;
        }

        budget.DropExpiredClaims(now);
        budget.RemoveClaim(claimant);
    }

    /// <summary>Returns how many claim moments <paramref name="key"/>'s budget holds (its entries: one per refill claimed).</summary>
    public int ClaimMoments(BackendStateKey key) => GetOrAdd(key).ClaimMoments;

    /// <summary>Returns what is left of <paramref name="key"/>'s budget now, and until when; <see langword="false"/> when nothing is known.</summary>
    public bool TryGetAvailable(BackendStateKey key, DateTimeOffset now, out long available, out DateTimeOffset resetAt)
    {
        var budget = GetOrAdd(key);
        if (budget.Flow is { } flow)
        {
            flow.Decay(now);
            available = Math.Max(0, budget.Limit - (long)Math.Ceiling(flow.Spent));
            resetAt = now + flow.UntilWhole;
            return true;
        }

        budget.Roll(now, _sequence);
        available = Math.Max(0, budget.Limit - budget.Reserved);
        resetAt = budget.WindowEnd;
        return budget.Limit >= 0 && budget.WindowEnd > now;
    }

    /// <summary>The backend did not count a reservation (a 429, a failed connection, an attempt never sent): its cost was not spent.</summary>
    public void Release(BackendReservation reservation)
    {
        var budget = GetOrAdd(reservation.Key);
        if (budget.Flow is { } flow)
        {
            flow.Release(reservation);
            return;
        }

        if (reservation.Sequence > budget.WindowStartSequence)
        {
            // Only a reservation of the current window: an older one was forgotten with its window.
            budget.Reserved = Math.Max(0, budget.Reserved - reservation.Offset);
            if (reservation.Sequence > budget.ReportSequence)
            {
                budget.GivenBackSinceReport += reservation.Offset;
            }
        }
    }

    /// <summary>Corrects the count with what the answer to <paramref name="reservation"/> reported.</summary>
    public void Correct(BackendReservation reservation, BackendReservationReport report, DateTimeOffset now)
    {
        var (remaining, limit, resetIn, requests) = report.RemainingTokens is { } tokens
            ? (tokens, report.LimitTokens, report.TokensResetAfter, false)
            : (report.RemainingRequests ?? -1, report.LimitRequests, report.RequestsResetAfter, true);
        if (remaining < 0 || limit is not { } knownLimit)
        {
            return;
        }

        var budget = GetOrAdd(reservation.Key);
        budget.Limit = knownLimit;
        budget.CountsRequests = requests;
        if (resetIn > budget.LongestReset)
        {
            budget.LongestReset = resetIn;
        }

        if (report.ReceivedAt - report.SentAt > _maxAnswerDelay)
        {
            return;
        }

        var resetAt = (_maxAnswerDelay is null ? report.SentAt : report.ReceivedAt) + resetIn;
        var sameWindow = SameWindow + (_maxAnswerDelay ?? TimeSpan.Zero);
        budget.Roll(now, _sequence);
        if (resetAt <= now)
        {
            // The window it describes is over.
            return;
        }

        var reservedSince = 0L;
        foreach (var (sequence, _, amount) in budget.Recent)
        {
            reservedSince += sequence > reservation.Sequence ? amount : 0;
        }

        var reserved = knownLimit - remaining + reservedSince;
        budget.ObserveReset(resetAt, sameWindow);
        if (budget.ReportSequence > budget.RefillSequence && resetAt > budget.WindowEnd + sameWindow && resetAt < budget.WindowEnd + budget.Window - sameWindow)
        {
            // A reported full moment (not one the counter rolled to) moved by less than a window: a continuous refill.
            budget.RefillsContinuously = true;
        }

        if (budget.RefillsContinuously && remaining < knownLimit && resetIn > TimeSpan.Zero)
        {
            // A continuous refill with a rate: a flow from now on (what the report lacked comes back at lacked / reset).
            // The windows below are still corrected, unused while the flow decides, as in the script.
            (budget.Flow ??= new Flow()).Report(reservation.Sequence, knownLimit - remaining, resetAt - resetIn, resetIn, reservedSince, now);
        }

        if (budget.WindowEnd == default || resetAt > budget.WindowEnd + sameWindow)
        {
            // A window the counter had only assumed (or a continuous budget's later "full" moment): the report is the truth.
            budget.WindowEnd = resetAt;
            budget.Reserved = reserved;
            budget.WindowStartSequence = reservation.Sequence;
            budget.ReportSequence = reservation.Sequence;
            budget.GivenBackSinceReport = 0;
        }
        else if (resetAt >= budget.WindowEnd - sameWindow)
        {
            if (resetAt >= budget.WindowEnd)
            {
                // One window's later moment: an older answer names a sooner one (a continuous refill's), never the refill.
                budget.ReportSequence = reservation.Sequence;
                budget.GivenBackSinceReport = 0;
                budget.WindowEnd = resetAt;
            }

            if (reserved > budget.Reserved)
            {
                // Raised, the count is the report's: a reservation made before it is in the report, or was never
                // counted, so its release is void.
                budget.Reserved = reserved;
                budget.WindowStartSequence = reservation.Sequence;
            }
        }
    }

    /// <summary>
    /// A refusal: the soonest refill (of at most <see cref="MaxRefills"/>, within <see cref="Horizon"/>) whose room fits
    /// the amount beside the claims already made in its window — claimed for a foreground request that names a
    /// claimant, only named otherwise; none within the horizon, the moment after the last one looked at.
    /// </summary>
    private static BackendReservation RefuseAtSoonestRoom(Budget budget, BackendStateKey key, long cost, long amount, double headroom, long claimant, DateTimeOffset now)
    {
        // Refills of later windows only: the current one refused the request. Headroom, promises and the foreground's
        // expected demand are the current window's; only claims are known of a later one. The first candidate is the
        // refill, today's answer: as in the Redis script (whose candidates are never sooner than today's answer), a
        // refusal never names a moment sooner than its budget's refill. Only a budget that judged the request takes
        // part (the script skips a token budget that does not judge it); here that is the key's one budget.
        var window = budget.Window;
        var candidate = budget.WindowEnd;
        if (amount > budget.Limit)
        {
            // No refill can hold it (a request budget with a limit of 0): told the next refill, as before claims, claiming nothing.
            return BackendReservation.Refused(key, cost, candidate - now);
        }

        var horizon = now + Horizon;
        for (var refill = 0; refill < MaxRefills && candidate <= horizon; refill++)
        {
            var windowEnd = window > TimeSpan.Zero ? candidate + window : DateTimeOffset.MaxValue;
            if (budget.Limit - budget.ClaimsOfRefill(candidate) >= amount)
            {
                if (claimant != 0 && headroom <= 0 && budget.TryAddClaim(claimant, candidate, amount))
                {
                    return BackendReservation.Claimed(key, cost, candidate - now);
                }

                return BackendReservation.Refused(key, cost, candidate - now);
            }

            if (window <= TimeSpan.Zero)
            {
                // One refill known (no window learned yet): the next is beyond what the counter can tell.
                return BackendReservation.Refused(key, cost, Horizon);
            }

            candidate = windowEnd;
        }

        // Every refill looked at is claimed: the moment after the last one (or, when even the first is beyond the
        // horizon, that refill).
        return BackendReservation.Refused(key, cost, candidate - now);
    }

    private Budget GetOrAdd(BackendStateKey key)
    {
        if (!_budgets.TryGetValue(key, out var budget))
        {
            _budgets[key] = budget = new Budget();
        }

        return budget;
    }

    private sealed class Budget
    {
        /// <summary>The foreground's demand on this budget, of every replica (a reservation without headroom is a foreground one), ended with its window.</summary>
        public ForegroundDemand Foreground;

        private TimeSpan? _gap;
        private DateTimeOffset _lastReset;

        public long Limit { get; set; } = -1;

        /// <summary>Gets or sets a value indicating whether the backend reports a request budget (a request costs 1), not a token budget.</summary>
        public bool CountsRequests { get; set; }

        /// <summary>
        /// Gets the refill window: the shortest gap between the reset moments of two windows reported one after the
        /// other (a gap shorter than a reported reset delay is one window seen twice), else the longest reset delay
        /// reported, which falls short of the window by the time the window's first request came after its refill.
        /// </summary>
        public TimeSpan Window => _gap ?? LongestReset;

        public TimeSpan LongestReset { get; set; }

        public DateTimeOffset WindowEnd { get; set; }

        public long Reserved { get; set; }

        /// <summary>
        /// Gets or sets the last sequence of the previous window, or of the reservation whose report set or raised the
        /// count: releases of reservations up to it are void.
        /// </summary>
        public long WindowStartSequence { get; set; }

        /// <summary>Gets or sets the last sequence before the last refill (the script's <c>m</c>; a report does not move it).</summary>
        public long RefillSequence { get; set; }

        /// <summary>Gets or sets the sequence of the reservation whose answer named <see cref="WindowEnd"/>.</summary>
        public long ReportSequence { get; set; }

        /// <summary>
        /// Gets or sets what was given back of the reservations made after <see cref="ReportSequence"/> (the script's
        /// <c>g</c>): emptied when another report sets it, whose releases it cannot tell apart, and at each refill.
        /// </summary>
        public long GivenBackSinceReport { get; set; }

        /// <summary>Gets or sets a value indicating whether the budget refills continuously (learned from its reports).</summary>
        public bool RefillsContinuously { get; set; }

        /// <summary>Gets or sets the budget as a flow, once it refills continuously and a report gave it a rate; <see langword="null"/> before.</summary>
        public Flow? Flow { get; set; }

        public Queue<(long Sequence, DateTimeOffset At, long Amount)> Recent { get; } = new();

        /// <summary>
        /// Gets the claims, one entry per refill claimed: by the moment of its first claim (the moment it counts at), the
        /// amount claimed and its latest claimant's moment (it ends with that one's grace).
        /// </summary>
        private Dictionary<DateTimeOffset, (long Amount, DateTimeOffset Latest)> Claims { get; } = [];

        /// <summary>Gets the claimant records: each claimant's moment and amount, dropped with its moment's claims.</summary>
        private Dictionary<long, (DateTimeOffset At, long Amount)> Claimants { get; } = [];

        public int ClaimMoments => Claims.Count;

        public bool TryGetClaim(long claimant, out DateTimeOffset at)
        {
            var found = Claimants.TryGetValue(claimant, out var claim);
            at = claim.At;
            return found;
        }

        /// <summary>
        /// Claims <paramref name="amount"/> at the refill at <paramref name="at"/> for <paramref name="claimant"/>: joins
        /// the entry that refill already has (answers move a window's end by milliseconds, so its claims name moments
        /// milliseconds apart), which lasts until its latest claimant's grace ends; the record keeps the moment told.
        /// Returns <see langword="false"/>, claiming nothing, when the refill has no entry and the budget holds
        /// <see cref="MaxClaimMoments"/> already.
        /// </summary>
        /// <remarks>
        /// The entry keeps the moment it counts at (its first claim's): moved to each later claimant's, it crept a refill
        /// forward join by join where a budget's refill moments move by seconds (a continuous refill's), and its room was
        /// set aside in a later window than its claimants', idle there (in flight, 8 replicas, 2x: served 0.961).
        /// </remarks>
        public bool TryAddClaim(long claimant, DateTimeOffset at, long amount)
        {
            if (EntryOfRefill(at) is { } entry)
            {
                var (claimed, latest) = Claims[entry];
                Claims[entry] = (Math.Min(Limit, claimed + amount), latest > at ? latest : at);
            }
            else if (Claims.Count >= MaxClaimMoments)
            {
                return false;
            }
            else
            {
                Claims[at] = (Math.Min(Limit, amount), at);
            }

            Claimants[claimant] = (at, amount);
            return true;
        }

        /// <summary>Removes <paramref name="claimant"/>'s claim: its amount leaves the entry of the refill nearest the moment it was told.</summary>
        public void RemoveClaim(long claimant)
        {
            if (Claimants.Remove(claimant, out var claim) && EntryOfRefill(claim.At) is { } entry)
            {
                var (claimed, latest) = Claims[entry];
                if (claimed - claim.Amount > 0)
                {
                    Claims[entry] = (claimed - claim.Amount, latest);
                }
                else
                {
                    Claims.Remove(entry);
                }
            }
        }

        /// <summary>
        /// Returns the moment of the entry that belongs to the refill at <paramref name="at"/> (the nearest-refill rule of
        /// <see cref="ClaimsOfRefill"/>: nearer than half a window; the nearest of them), or <see langword="null"/>.
        /// With no window learned, only an entry at that very moment.
        /// </summary>
        private DateTimeOffset? EntryOfRefill(DateTimeOffset at)
        {
            var half = Window / 2;
            DateTimeOffset? nearest = null;
            foreach (var moment in Claims.Keys)
            {
                var distance = (moment - at).Duration();
                if ((distance < half || distance == TimeSpan.Zero) && (nearest is not { } best || distance < (best - at).Duration()))
                {
                    nearest = moment;
                }
            }

            return nearest;
        }

        /// <summary>
        /// Drops every claim whose grace is over (its room is free again), and every claimant record whose own grace is
        /// over (as the Redis store's records expire: an entry lasts its latest claimant's grace, a record its own).
        /// </summary>
        /// <remarks>
        /// The counter holds only claims of its own making, never more than <see cref="MaxClaimMoments"/> moments
        /// (<see cref="TryAddClaim"/>): unlike the Redis script, it has no peer's garbage to drop whole.
        /// </remarks>
        public void DropExpiredClaims(DateTimeOffset now)
        {
            if (Claims.Count > 0)
            {
                foreach (var at in Claims.Where(entry => entry.Value.Latest + Grace <= now || entry.Key > now + Horizon + Grace).Select(entry => entry.Key).ToList())
                {
                    Claims.Remove(at);
                }
            }

            if (Claimants.Count > 0)
            {
                foreach (var (claimant, _) in Claimants.Where(record => record.Value.At + Grace <= now).ToList())
                {
                    Claimants.Remove(claimant);
                }
            }
        }

        /// <summary>
        /// Returns what is claimed in the current window (its moment passed or not): the claims of its refill (see
        /// <see cref="ClaimsOfRefill"/>); with no window learned, every claim before its end.
        /// </summary>
        public long ClaimsDueInCurrentWindow()
            => Window > TimeSpan.Zero ? ClaimsOfRefill(WindowEnd - Window) : ClaimsIn(DateTimeOffset.MinValue, WindowEnd);

        /// <summary>
        /// Returns what is claimed in the refill at <paramref name="refill"/>: the claims whose moment is nearer to it than
        /// to any other refill (within half a window either side). Claims are made at refill moments, but a budget's
        /// window end moves by milliseconds with the answers that report it: counted from the moment on, a claim made a
        /// millisecond before would fall in the window before, and the same refill would be claimed twice over.
        /// With no window learned, every claim from it on.
        /// </summary>
        public long ClaimsOfRefill(DateTimeOffset refill)
            => Window > TimeSpan.Zero ? ClaimsIn(refill - (Window / 2), refill + (Window / 2)) : ClaimsIn(refill, DateTimeOffset.MaxValue);

        /// <summary>Returns what is claimed at moments in [<paramref name="from"/>, <paramref name="to"/>).</summary>
        public long ClaimsIn(DateTimeOffset from, DateTimeOffset to)
        {
            var claimed = 0L;
            foreach (var (at, (amount, _)) in Claims)
            {
                claimed += at >= from && at < to ? amount : 0;
            }

            return claimed;
        }

        /// <summary>Returns what a request of <paramref name="cost"/> tokens counts against this budget: one request, or its tokens (none when unknown).</summary>
        public long AmountOf(long cost) => CountsRequests ? 1 : Math.Max(0, cost);

        /// <summary>
        /// Returns whether the budget may hold back a request counting <paramref name="amount"/>, as the replica's view and
        /// the Redis script judge it: a request budget every request (a limit of 0 admits none); a token budget neither a
        /// request larger than its whole limit (only the backend can judge it) nor a foreground one of unknown cost.
        /// </summary>
        public bool Judges(long amount, double headroom, double promised)
            => CountsRequests || (amount <= Limit && (amount > 0 || headroom > 0 || promised > 0));

        public void ObserveReset(DateTimeOffset resetAt, TimeSpan sameWindow)
        {
            var gap = resetAt - _lastReset;
            if (_lastReset != default && gap > sameWindow && gap >= LongestReset && (_gap is null || gap < _gap))
            {
                _gap = gap;
            }

            if (resetAt > _lastReset)
            {
                _lastReset = resetAt;
            }
        }

        /// <summary>At the reset the budget is full again; the next reset is one window later.</summary>
        public void Roll(DateTimeOffset now, long lastSequence)
        {
            if (WindowEnd == default || now < WindowEnd)
            {
                return;
            }

            if (RefillsContinuously && ReportSequence > RefillSequence && now < WindowEnd + Window)
            {
                // A continuous refill's full moment: what was reserved after the report that named it is still spent,
                // less what was given back since.
                var reservedSince = 0L;
                foreach (var (sequence, _, amount) in Recent)
                {
                    reservedSince += sequence > ReportSequence ? amount : 0;
                }

                Reserved = Math.Max(0, reservedSince - GivenBackSinceReport);
                WindowStartSequence = RefillSequence = ReportSequence;
            }
            else
            {
                Reserved = 0;
                WindowStartSequence = RefillSequence = lastSequence;
            }

            GivenBackSinceReport = 0;

            if (Window <= TimeSpan.Zero)
            {
                Foreground.EndWindows(1);
                WindowEnd = default;
                return;
            }

            var windows = 0;
            while (WindowEnd <= now)
            {
                WindowEnd += Window;
                windows++;
            }

            Foreground.EndWindows(windows);
        }

        public void Prune(DateTimeOffset now)
        {
            while (Recent.TryPeek(out var oldest) && oldest.At < now - History)
            {
                Recent.Dequeue();
            }
        }
    }
}
