namespace Polly.PriorityRouting;

/// <summary>
/// The shared reservations refused to one request (see <see cref="IBackendReservationStore"/>), per backend and
/// partition, until their budget refills: a refusal closes the backend to this request only, and its refill is when
/// the exhausted answer tells the caller to come back (<see cref="BudgetExhaustion.TimeUntilFree"/>).
/// </summary>
/// <remarks>
/// Allocated at a request's first refusal only, and bounded by the request itself: each backend of each model it
/// walks is refused at most once per round (a new round after a wait starts without refusals).
/// </remarks>
internal sealed class ReservationRefusals
{
    private readonly List<(BackendStateKey Key, DateTimeOffset Until)> _refused = new(2);

    public void Add(BackendStateKey key, DateTimeOffset until) => _refused.Add((key, until));

    /// <summary>Returns until when the key's reservation was refused to this request; the latest when refused twice.</summary>
    public bool TryGetUntil(BackendStateKey key, out DateTimeOffset until)
    {
        until = default;
        var found = false;
        foreach (var refusal in _refused)
        {
            if (refusal.Key == key && (!found || refusal.Until > until))
            {
                (found, until) = (true, refusal.Until);
            }
        }

        return found;
    }
}
