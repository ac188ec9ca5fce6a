namespace Polly.PriorityRouting;

/// <summary>The requests in flight from this process to one backend; lock-free.</summary>
internal sealed class InFlightCounter
{
    private int _count;
    private TaskCompletionSource? _released;

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

        // A read first: with nobody waiting (the usual case) no write.
        if (Volatile.Read(ref _released) is not null)
        {
            Interlocked.Exchange(ref _released, null)?.TrySetResult();
        }
    }

    /// <summary>Returns a task that completes at the next <see cref="Exit"/>: check the count after taking it.</summary>
    public Task WhenReleased()
    {
        if (Volatile.Read(ref _released) is { } waiting)
        {
            return waiting.Task;
        }

        // Continuations run on the pool: a releasing caller's read of its body never runs another request's attempt.
        var created = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        return (Interlocked.CompareExchange(ref _released, created, null) ?? created).Task;
    }
}
