using Polly.PriorityRouting;

namespace PriorityRouting.Simulation.Routers;

/// <summary>
/// A budget refilled continuously (OpenAI's), as a flow: what is spent comes back at the rate its reports tell, and a
/// claim is a place in the queue on that rate. The Redis script's rule too (<c>ReservationScripts</c>, the same-named
/// tests; docs/distributed.md, "Continuous budgets").
/// </summary>
/// <remarks>
/// As windows, such a budget was full only at the moment its last report named: what came back before sat idle, and the
/// claims of that moment were all redeemed at once, after which no answer reported the budget for a while. As a flow,
/// what a report lacked comes back at lacked ÷ reset (OpenAI's reset is the time until the bucket is full), a refused
/// request is told when the flow will have room for it, and a claim counts its amount at once: later requests, claimed
/// or not, wait behind it, and its claimant, back at its moment, is admitted without a check. A foreground request the
/// count refuses may still take room no claim needs by its moment (<see cref="Flow.RoomNow"/>): the gap a claim given
/// back leaves before the claims queued behind it.
/// </remarks>
internal sealed partial class SharedReservationCounter
{
    private BackendReservation ReserveFromFlow(Budget budget, Flow flow, BackendStateKey key, long cost, double headroom, double promised, long claimant, DateTimeOffset now)
    {
        flow.Decay(now);
        flow.DropExpiredClaims(now);
        var amount = budget.AmountOf(cost);
        var limit = budget.Limit;
        if (claimant != 0 && flow.TryGetClaim(claimant, out var claim))
        {
            if (now < claim.At)
            {
                Refused++;
                return BackendReservation.Claimed(key, cost, claim.At - now);
            }

            // Its room was counted when it was claimed: admitted without a check (a request of another size moves the
            // count by the difference).
            flow.Redeem(claimant, amount);
            return Admit(budget, key, cost, amount, headroom, now);
        }

        // A background request also leaves free what the foreground is expected to spend until the flow is whole again.
        var expected = headroom > 0 ? budget.Foreground.Expected(limit, flow.UntilWhole) : 0;
        var kept = (long)(Math.Max(0, Math.Min(Math.Ceiling(headroom * limit), limit - amount)) + Math.Ceiling(promised * limit));
        // A foreground request may also take room no claim needs by its moment: a claim given back leaves a gap before
        // the claims queued behind it, which keep their moments.
        if (budget.Judges(amount, headroom, promised) && flow.Counted + amount > limit - kept - expected
            && !(headroom <= 0 && promised <= 0 && amount <= flow.RoomNow(limit, now)))
        {
            Refused++;
            var wait = flow.Until(amount + kept + expected - limit);

            // A claim counts at once: whatever comes after it, claimed or not, waits behind it.
            if (claimant != 0 && headroom <= 0 && amount <= limit && wait <= Horizon && flow.TryClaim(claimant, now + wait, amount))
            {
                return BackendReservation.Claimed(key, cost, wait);
            }

            return BackendReservation.Refused(key, cost, wait);
        }

        flow.Spent += amount;
        return Admit(budget, key, cost, amount, headroom, now);
    }

    /// <summary>
    /// A continuous budget's state: what is spent (claims not yet redeemed included) as of a moment, the rate it comes
    /// back at, and its claims, each with its moment and amount (the Redis store's claimant records and the sorted set
    /// of the budget's flow claims, <c>&lt;budget key&gt;:f</c>).
    /// </summary>
    private sealed class Flow
    {
        /// <summary>The most claims a flow holds (the Redis script's bound on its sorted set): no claim is added beyond it.</summary>
        public const int MaxClaims = 4096;

        /// <summary>The most claims <see cref="RoomNow"/> reads (the Redis script's <c>MAXROOMSCAN</c>): a longer queue keeps the count's answer.</summary>
        public const int MaxRoomScan = 512;

        private readonly Dictionary<long, (DateTimeOffset At, long Amount)> _claims = [];
        private DateTimeOffset _at;
        private double _rate;
        private long _reportSequence;

        /// <summary>Gets or sets what is spent as of the last <see cref="Decay"/>: admitted requests and claims not yet redeemed.</summary>
        public double Spent { get; set; }

        /// <summary>Gets how long until all that is spent has come back.</summary>
        public TimeSpan UntilWhole => TimeSpan.FromMilliseconds(Math.Ceiling(Spent / _rate));

        /// <summary>Brings <see cref="Spent"/> forward to <paramref name="now"/>: what came back since is free.</summary>
        public void Decay(DateTimeOffset now)
        {
            if (now > _at)
            {
                Spent = Math.Max(0, Spent - (_rate * (now - _at).TotalMilliseconds));
                _at = now;
            }
        }

        /// <summary>
        /// Gets what the count holds: what is spent, never less than the claims hold (their room is theirs, even where the
        /// count decayed past them).
        /// </summary>
        public double Counted => Math.Max(Spent, Claimed);

        /// <summary>Returns how long until what is counted has come down by <paramref name="over"/> (at least a millisecond).</summary>
        public TimeSpan Until(double over)
            => TimeSpan.FromMilliseconds(Math.Max(1, Math.Ceiling((Counted + over) / _rate)));

        /// <summary>
        /// Sets the flow from a report of the answer to reservation <paramref name="sequence"/>, unless a later one set it
        /// already: what the backend lacked then comes back at lacked ÷ reset; what was reserved after that reservation and
        /// what claims hold are spent on top.
        /// </summary>
        public void Report(long sequence, long lacked, DateTimeOffset reportedAt, TimeSpan reset, long reservedSince, DateTimeOffset now)
        {
            if (sequence <= _reportSequence)
            {
                return;
            }

            _rate = lacked / reset.TotalMilliseconds;
            Spent = Math.Max(0, lacked - (_rate * Math.Max(0, (now - reportedAt).TotalMilliseconds))) + reservedSince + Claimed;
            _at = now;
            _reportSequence = sequence;
        }

        /// <summary>
        /// Returns the most a request admitted now may take while every claim still finds its amount at its moment: what
        /// the bucket holds now (the limit less what is spent but for the claims), and, claim by claim in the order of their
        /// moments, what it holds then (refilled at the rate, never beyond the limit) less the claims due by then. The
        /// limit less <see cref="Spent"/> when every claim is queued right behind the one before it; more where a claim
        /// given back (or expired) left a gap. With more than <see cref="MaxRoomScan"/> claims, the count's room: the limit
        /// less <see cref="Counted"/>.
        /// </summary>
        public double RoomNow(long limit, DateTimeOffset now)
        {
            if (_claims.Count > MaxRoomScan)
            {
                return limit - Counted;
            }

            var level = Math.Min(limit, limit - (Spent - Claimed));
            var room = level;
            var at = now;
            foreach (var (moment, amount) in _claims.Values.OrderBy(claim => claim.At))
            {
                if (moment > at)
                {
                    level = Math.Min(limit, level + (_rate * (moment - at).TotalMilliseconds));
                    at = moment;
                }

                level -= amount;
                room = Math.Min(room, level);
            }

            return room;
        }

        /// <summary>Gets what the claims not yet redeemed hold (counted in <see cref="Spent"/>).</summary>
        public long Claimed { get; private set; }

        public bool TryGetClaim(long claimant, out (DateTimeOffset At, long Amount) claim) => _claims.TryGetValue(claimant, out claim);

        /// <summary>Counts <paramref name="amount"/> now for <paramref name="claimant"/>, which comes back for it at <paramref name="at"/>.</summary>
        public bool TryClaim(long claimant, DateTimeOffset at, long amount)
        {
            if (_claims.Count >= MaxClaims)
            {
                return false;
            }

            _claims[claimant] = (at, amount);
            Claimed += amount;
            Spent += amount;
            return true;
        }

        /// <summary>The claimant came back for its claim: counted already; a request of another size moves the count by the difference.</summary>
        public void Redeem(long claimant, long amount)
        {
            if (_claims.Remove(claimant, out var claim))
            {
                Claimed -= claim.Amount;
                Spent = Math.Max(0, Spent + amount - claim.Amount);
            }
        }

        /// <summary>The claimant will not come back (admitted elsewhere, or it gave up): its room is free again.</summary>
        public void GiveBack(long claimant)
        {
            if (_claims.Remove(claimant, out var claim))
            {
                Claimed -= claim.Amount;
                Spent = Math.Max(0, Spent - claim.Amount);
            }
        }

        /// <summary>Frees the room of every claim whose grace (after its moment) ended unredeemed.</summary>
        public void DropExpiredClaims(DateTimeOffset now)
        {
            if (_claims.Count == 0)
            {
                return;
            }

            foreach (var (claimant, _) in _claims.Where(entry => entry.Value.At + Grace <= now).ToList())
            {
                GiveBack(claimant);
            }
        }

        /// <summary>The backend did not count <paramref name="reservation"/>: what it reserved after the last report comes back.</summary>
        public void Release(BackendReservation reservation)
        {
            if (reservation.Sequence > _reportSequence)
            {
                Spent = Math.Max(0, Spent - reservation.Offset);
            }
        }
    }
}
