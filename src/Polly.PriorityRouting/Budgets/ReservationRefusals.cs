namespace Polly.PriorityRouting;

/// <summary>
/// The shared reservations refused to one request (see <see cref="IBackendReservationStore"/>), per backend and
/// partition, until their budget refills: a refusal closes the backend to this request only, and its refill is when
/// the exhausted answer tells the caller to come back (<see cref="BudgetExhaustion.TimeUntilFree"/>).
/// </summary>
/// <remarks>
/// Allocated at a request's first refusal only, and bounded by the request itself: each backend of each model it
/// walks is refused at most once per round. A new round after a wait starts without refusals (<see cref="NextRound"/>)
/// but keeps the claim the request waited for, so that it is given back if the request is admitted elsewhere.
/// </remarks>
internal sealed class ReservationRefusals
{
    private readonly List<(BackendStateKey Key, DateTimeOffset Until, bool Claimed, bool ThisRound)> _refused = new(2);

    /// <summary>Remembers a refusal; <paramref name="claimed"/> when the store set room aside for this request at <paramref name="until"/>.</summary>
    public void Add(BackendStateKey key, DateTimeOffset until, bool claimed = false) => _refused.Add((key, until, claimed, true));

    /// <summary>
    /// Returns the refusals of a new round: none, but the claims still held (they close no backend and name no refill
    /// in the new round's answer), or <see langword="null"/> when none is held.
    /// </summary>
    public ReservationRefusals? NextRound()
    {
        ReservationRefusals? next = null;
        foreach (var (key, until, claimed, _) in _refused)
        {
            if (claimed)
            {
                next ??= new ReservationRefusals();
                next._refused.Add((key, until, true, false));
            }
        }

        return next;
    }

    /// <summary>Returns until when the key's reservation was refused to this request; the latest when refused twice.</summary>
    public bool TryGetUntil(BackendStateKey key, out DateTimeOffset until) => TryGetUntil(key, out until, out _);

    /// <summary>
    /// Gives back every claim these refusals hold but the soonest (<paramref name="keepSoonest"/>) or all: a request
    /// comes back for one claim only, and a claim it will not come for holds room from everyone else until its grace ends.
    /// The claim on <paramref name="admitted"/>, the key the request is admitted on, is not given back: the store
    /// redeemed it with that admission.
    /// </summary>
    public void ReleaseClaims(IBackendReservationStore store, long claimant, bool keepSoonest, BackendStateKey? admitted = null)
    {
        var kept = -1;
        for (var i = 0; keepSoonest && i < _refused.Count; i++)
        {
            if (_refused[i].Claimed && (kept < 0 || _refused[i].Until < _refused[kept].Until))
            {
                kept = i;
            }
        }

        for (var i = 0; i < _refused.Count; i++)
        {
            var (key, until, claimed, thisRound) = _refused[i];
            if (claimed && i != kept && (kept < 0 || key != _refused[kept].Key))
            {
                // Once: a claim given back (or redeemed) is no longer held.
                _refused[i] = (key, until, false, thisRound);
                if (key != admitted)
                {
                    store.ReleaseClaim(key, claimant);
                }
            }
        }
    }

    /// <summary>
    /// Returns until when the key's reservation was refused to this request (the latest when refused twice), and whether
    /// that refusal holds a claim (<see cref="BackendReservation.HoldsClaim"/>).
    /// </summary>
    public bool TryGetUntil(BackendStateKey key, out DateTimeOffset until, out bool claimed)
    {
        (until, claimed) = (default, false);
        var found = false;
        foreach (var refusal in _refused)
        {
            if (refusal.ThisRound && refusal.Key == key && (!found || refusal.Until > until))
            {
                (found, until, claimed) = (true, refusal.Until, refusal.Claimed);
            }
        }

        return found;
    }
}
