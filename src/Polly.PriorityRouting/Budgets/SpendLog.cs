namespace Polly.PriorityRouting;

/// <summary>
/// What this process spent against one budget since its last answer that reported it, in admission order (each spend
/// has its admission's ticket): an answer reports the budget as the backend admitted that attempt, so its count includes
/// what this process admitted before the attempt, not what it admitted while the attempt was in flight (a completion
/// answers seconds later). Tickets rather than times: many attempts are admitted within one tick of a clock. Mutated
/// under the owning <see cref="BackendBudget"/>'s lock.
/// </summary>
/// <remarks>
/// Bounded: past <see cref="Capacity"/> spends, the two oldest become one with the later ticket, so that they are
/// counted for longer, never dropped early (an answer then frees them later than it could: room is under-, never
/// over-counted).
/// </remarks>
internal sealed class SpendLog
{
    public const int Capacity = 256;

    private readonly List<(long Ticket, long Cost)> _spends = [];

    /// <summary>Gets the sum of the spends in the log.</summary>
    public long Total { get; private set; }

    /// <summary>Adds the spend of the admission <paramref name="ticket"/> (tickets come in increasing order).</summary>
    public void Add(long ticket, long cost)
    {
        if (_spends.Count == Capacity)
        {
            _spends[1] = (_spends[1].Ticket, _spends[0].Cost + _spends[1].Cost);
            _spends.RemoveAt(0);
        }

        _spends.Add((ticket, cost));
        Total += cost;
    }

    /// <summary>Forgets the spends of the admissions up to <paramref name="ticket"/>: a count reported as of then includes them.</summary>
    public void DropUpTo(long ticket)
    {
        var included = 0;
        while (included < _spends.Count && _spends[included].Ticket <= ticket)
        {
            Total -= _spends[included].Cost;
            included++;
        }

        _spends.RemoveRange(0, included);
    }

    /// <summary>Forgets every spend: the window they were spent in is over.</summary>
    public void Clear()
    {
        _spends.Clear();
        Total = 0;
    }
}
