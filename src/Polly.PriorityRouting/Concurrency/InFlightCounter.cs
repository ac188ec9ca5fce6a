namespace Polly.PriorityRouting;

/// <summary>The requests in flight from this process to one backend; lock-free.</summary>
/// <remarks>
/// A slot given back wakes the requests waiting for one foreground first, as a refill's room goes to foreground requests
/// first (<see cref="BackendBudget"/>): a background waiter is woken only while no foreground request has its turn — from
/// its wait until its next admission is decided (<see cref="SlotTurn"/>).
/// </remarks>
internal sealed class InFlightCounter
{
    private int _count;
    private int _foregroundTurns;
    private TaskCompletionSource? _released;
    private TaskCompletionSource? _releasedToBackground;

    /// <summary>Gets the requests in flight now.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>Counts one more request if fewer than <paramref name="cap"/> are in flight; never more than the cap.</summary>
    public bool TryEnter(int cap)
    {
        var count = Volatile.Read(ref _count);
        while (count < cap)
        {
            var seen = Interlocked.CompareExchange(ref _count, count + 1, count);
            if (seen == count)
            {
                return true;
            }

            count = seen;
        }

        return false;
    }

    /// <summary>Counts one request less, and wakes whoever waits for a slot; called once per entry, by its <see cref="InFlightSlot"/>.</summary>
    public void Exit()
    {
        Interlocked.Decrement(ref _count);
        Wake(ref _released);
        if (Volatile.Read(ref _foregroundTurns) == 0)
        {
            Wake(ref _releasedToBackground);
        }
    }

    /// <summary>
    /// Returns a task that completes at the next <see cref="Exit"/> for a foreground waiter, at the next one while no
    /// foreground request has its turn for a <paramref name="background"/> waiter: check the count after taking it.
    /// </summary>
    public Task WhenReleased(bool background)
    {
        ref var released = ref background ? ref _releasedToBackground : ref _released;
        if (Volatile.Read(ref released) is { } waiting)
        {
            return waiting.Task;
        }

        // Continuations run on the pool: a releasing caller's read of its body never runs another request's attempt.
        var created = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        return (Interlocked.CompareExchange(ref released, created, null) ?? created).Task;
    }

    /// <summary>A foreground request waits for a slot: background waiters are not woken until its turn ends.</summary>
    public void BeginForegroundTurn() => Interlocked.Increment(ref _foregroundTurns);

    /// <summary>
    /// A foreground request's turn ended (its admission was decided, or its wait ended without a slot): with no other
    /// foreground turn, background waiters are woken when a slot under <paramref name="cap"/> is free, which a slot given
    /// back during the turn may be.
    /// </summary>
    /// <remarks>
    /// The turn is ended before the count is read, as <see cref="Exit"/> gives the slot back before it reads the turns:
    /// with both writes fenced (<see cref="Interlocked"/>), one of the two sees the other's, so a slot given back as the
    /// last turn ends always wakes the background waiters (read first, a count could be stale by then).
    /// </remarks>
    public void EndForegroundTurn(int cap)
    {
        if (Interlocked.Decrement(ref _foregroundTurns) == 0 && Volatile.Read(ref _count) < cap)
        {
            Wake(ref _releasedToBackground);
        }
    }

    private static void Wake(ref TaskCompletionSource? released)
    {
        // A read first: with nobody waiting (the usual case) no write.
        if (Volatile.Read(ref released) is not null)
        {
            Interlocked.Exchange(ref released, null)?.TrySetResult();
        }
    }
}
