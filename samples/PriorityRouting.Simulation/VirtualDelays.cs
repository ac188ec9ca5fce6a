using Microsoft.Extensions.Time.Testing;

namespace PriorityRouting.Simulation;

/// <summary>
/// The simulation's own waits (a completion in flight, a round trip to the shared store) on the virtual clock, completed
/// by the driver in order of due moment, then of creation: unlike timers of the fake clock, ties never depend on hash
/// order, and a wait is not rounded to whole milliseconds. A waiter continues inline, on the driver's thread.
/// </summary>
internal sealed class VirtualDelays(FakeTimeProvider time)
{
    private readonly PriorityQueue<TaskCompletionSource, (DateTimeOffset Due, long Sequence)> _due = new();
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

    /// <summary>Completes every wait due by now, in order (a completed wait may start another that is due too).</summary>
    public void RunDue()
    {
        var now = time.GetUtcNow();
        while (_due.TryPeek(out var completion, out var priority) && priority.Due <= now)
        {
            _due.Dequeue();
            completion.TrySetResult();
        }
    }

    /// <summary>Advances the clock to <paramref name="until"/>, stopping at each wait due before it to complete it then.</summary>
    public void AdvanceTo(DateTimeOffset until)
    {
        RunDue();
        while (NextDue is { } due && due < until)
        {
            time.SetUtcNow(due);
            RunDue();
        }

        time.SetUtcNow(until);
    }
}
