namespace Polly.PriorityRouting;

/// <summary>
/// A foreground request's turn at the slots of the backends it waited for: from its wait until its next admission is
/// decided, a slot given back wakes no background waiter of those backends (see <see cref="InFlightCounter"/>). Ends once.
/// </summary>
internal sealed class SlotTurn(List<InFlightLimit> limits) : IDisposable
{
    private int _ended;

    /// <summary>Ends the turn on every backend it holds; once.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _ended, 1) == 1)
        {
            return;
        }

        foreach (var limit in limits)
        {
            limit.EndForegroundTurn();
        }
    }
}
