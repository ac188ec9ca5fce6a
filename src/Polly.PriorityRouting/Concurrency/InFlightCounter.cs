namespace Polly.PriorityRouting;

/// <summary>The requests in flight from this process to one backend; lock-free.</summary>
internal sealed class InFlightCounter
{
    private int _count;

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

    /// <summary>Counts one request less; called once per entry, by its <see cref="InFlightSlot"/>.</summary>
    public void Exit() => Interlocked.Decrement(ref _count);
}
