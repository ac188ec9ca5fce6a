using Microsoft.Extensions.Time.Testing;

namespace PriorityRouting.Simulation;

/// <summary>
/// The simulation's own waits (a completion in flight, a round trip to the shared store) on the virtual clock, completed
/// by the driver in order of due moment, then of creation: unlike timers of the fake clock, ties never depend on hash
/// order, and a wait is not rounded to whole milliseconds. A waiter continues inline, on the driver's thread; what it
/// posts to the run's <see cref="DeterministicSynchronizationContext"/> runs when the driver settles the run.
/// </summary>
/// <remarks>
/// Waits complete, and the clock's timers fire, with no synchronization context current: the runtime inlines an
/// <c>await</c>'s continuation (<c>ConfigureAwait(false)</c>) only where no custom context is current, and would
/// otherwise queue it to the thread pool, off the run's thread. Continuations that captured the run's context still go
/// to it.
/// </remarks>
internal sealed class VirtualDelays(FakeTimeProvider time, DeterministicSynchronizationContext pump)
{
    private readonly PriorityQueue<TaskCompletionSource, (DateTimeOffset Due, long Sequence)> _due = new();
    private readonly int _thread = Environment.CurrentManagedThreadId;
    private long _sequence;

    /// <summary>Gets the moment the next wait ends, if any is pending.</summary>
    public DateTimeOffset? NextDue => _due.TryPeek(out _, out var priority) ? priority.Due : null;

    /// <summary>Returns a task that completes <paramref name="delay"/> from now on the virtual clock, or when cancelled.</summary>
    public Task Delay(TimeSpan delay, CancellationToken cancellationToken)
    {
        if (delay <= TimeSpan.Zero)
        {
            return Task.CompletedTask;
        }

        if (Environment.CurrentManagedThreadId != _thread)
        {
            throw new InvalidOperationException("A simulated wait started off the run's thread: the run would not be deterministic.");
        }

        // Continuations run inline: the driver's loop is the only thread, and its order is the run's order.
        var completion = new TaskCompletionSource();
        if (cancellationToken.CanBeCanceled)
        {
            var registration = cancellationToken.Register(static state => ((TaskCompletionSource)state!).TrySetCanceled(), completion);
            _ = completion.Task.ContinueWith(_ => registration.Dispose(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }

        _due.Enqueue(completion, (time.GetUtcNow() + delay, _sequence++));
        return completion.Task;
    }

    /// <summary>
    /// Completes every wait due by now, in order, and runs what the run's context was posted, until neither has anything
    /// left (a completed wait may post a continuation, which may start a wait that is due too).
    /// </summary>
    public void Settle()
    {
        while (RunDue() | pump.RunPending())
        {
        }
    }

    /// <summary>Advances the clock to <paramref name="until"/>, stopping at each wait due before it to complete it then.</summary>
    public void AdvanceTo(DateTimeOffset until)
    {
        Settle();
        while (NextDue is { } due && due < until)
        {
            SetClock(due);
            Settle();
        }

        SetClock(until);
        Settle();
    }

    private void SetClock(DateTimeOffset now)
    {
        var context = SynchronizationContext.Current;
        SynchronizationContext.SetSynchronizationContext(null);
        try
        {
            time.SetUtcNow(now);
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(context);
        }
    }

    private bool RunDue()
    {
        var now = time.GetUtcNow();
        var ran = false;
        var context = SynchronizationContext.Current;
        SynchronizationContext.SetSynchronizationContext(null);
        try
        {
            while (_due.TryPeek(out var completion, out var priority) && priority.Due <= now)
            {
                _due.Dequeue();
                completion.TrySetResult();
                ran = true;
            }
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(context);
        }

        return ran;
    }
}
