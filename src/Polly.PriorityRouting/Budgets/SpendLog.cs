namespace Polly.PriorityRouting;

/// <summary>
/// What this process spent against one budget since its last answer that reported it, in admission order (each spend
/// has its admission's ticket): an answer reports the budget as the backend admitted that attempt, so its count includes
/// what this process admitted before the attempt, not what it admitted while the attempt was in flight (a completion
/// answers seconds later). Tickets rather than times: many attempts are admitted within one tick of a clock. Mutated
/// under the owning <see cref="BackendBudget"/>'s lock.
/// </summary>
/// <remarks>
/// Bounded and allocation-free after its first spend: a ring of <see cref="Capacity"/> spends. When it is full, the
/// oldest spend is folded into the next one (with the later ticket), so that it is counted for longer, never dropped
/// early (an answer then frees it later than it could: room is under-, never over-counted).
/// </remarks>
internal sealed class SpendLog
{
    public const int Capacity = 64;

    private readonly (long Ticket, long Cost)[] _spends = new (long, long)[Capacity];
    private int _first;
    private int _count;

    /// <summary>Gets the sum of the spends in the log.</summary>
    public long Total { get; private set; }

    /// <summary>Adds the spend of the admission <paramref name="ticket"/> (tickets come in increasing order).</summary>
    public void Add(long ticket, long cost)
    {
        if (_count == Capacity)
        {
            var oldest = _spends[_first];
            _first = (_first + 1) % Capacity;
            _count--;
            _spends[_first].Cost += oldest.Cost;
        }

        _spends[(_first + _count) % Capacity] = (ticket, cost);
        _count++;
        Total += cost;
    }

    /// <summary>Gets the ticket of the latest spend in the log, or 0 when it is empty.</summary>
    public long LatestTicket => _count == 0 ? 0 : _spends[(_first + _count - 1) % Capacity].Ticket;

    /// <summary>
    /// Forgets up to <paramref name="amount"/> of the spends of the admissions up to <paramref name="ticket"/>, oldest
    /// first (the last one it reaches only in part): a budget refilled continuously has refilled that much of them.
    /// </summary>
    public void Forgive(long amount, long ticket)
    {
        while (amount > 0 && _count > 0 && _spends[_first].Ticket <= ticket)
        {
            ref var oldest = ref _spends[_first];
            var forgiven = Math.Min(amount, oldest.Cost);
            oldest.Cost -= forgiven;
            Total -= forgiven;
            amount -= forgiven;
            if (oldest.Cost == 0)
            {
                _first = (_first + 1) % Capacity;
                _count--;
            }
        }
    }

    /// <summary>Forgets the spends of the admissions up to <paramref name="ticket"/>: a count reported as of then includes them.</summary>
    public void DropUpTo(long ticket)
    {
        while (_count > 0 && _spends[_first].Ticket <= ticket)
        {
            Total -= _spends[_first].Cost;
            _first = (_first + 1) % Capacity;
            _count--;
        }
    }

    /// <summary>Forgets every spend: the window they were spent in is over.</summary>
    public void Clear()
    {
        _first = 0;
        _count = 0;
        Total = 0;
    }
}
