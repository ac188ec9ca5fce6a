using Microsoft.Extensions.Time.Testing;

namespace Polly.PriorityRouting.Tests.Support;

/// <summary>
/// A fake clock whose timers can be made late, as real timers are (they fire at or after their time): while
/// <see cref="TimersAreLate"/>, a timer that comes due is held until <see cref="FireLateTimers"/>. It also finds the
/// pipeline's <see cref="WaitQueue"/> through the timer the queue creates, so that a test can see who waits.
/// </summary>
internal sealed class LateTimerTimeProvider : FakeTimeProvider
{
    private readonly List<Action> _late = [];
    private WaitQueue? _queue;
    private int _created;

    public LateTimerTimeProvider(DateTimeOffset start)
        : base(start)
    {
    }

    public bool TimersAreLate { get; set; }

    /// <summary>Gets the wait queue of the pipeline on this clock.</summary>
    public WaitQueue Queue => _queue ?? throw new InvalidOperationException("No wait queue runs on this clock.");

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        Interlocked.Increment(ref _created);
        if (state is WaitQueue queue)
        {
            _queue = queue;
        }

        return base.CreateTimer(
            _ =>
            {
                if (!TimersAreLate)
                {
                    callback(state);
                    return;
                }

                lock (_late)
                {
                    _late.Add(() => callback(state));
                }
            },
            null,
            dueTime,
            period);
    }

    /// <summary>
    /// Waits, for a few real seconds at most, until <paramref name="count"/> timers were created (the queue's own is the
    /// first): a bounded wait for a slot (a <c>Task.Delay</c> on the clock) has begun once its timer exists.
    /// </summary>
    public bool WaitForTimers(int count) => SpinWait.SpinUntil(() => Volatile.Read(ref _created) >= count, TimeSpan.FromSeconds(10));

    /// <summary>Runs the callbacks of the timers that came due while late, in the order they came due.</summary>
    public void FireLateTimers()
    {
        TimersAreLate = false;
        List<Action> due;
        lock (_late)
        {
            due = [.. _late];
            _late.Clear();
        }

        foreach (var callback in due)
        {
            callback();
        }
    }

    /// <summary>
    /// Waits until <paramref name="count"/> callers wait in the queue: a released waiter continues on the thread pool,
    /// and may wait again. The guard only ends a test that fails.
    /// </summary>
    public async Task WhenWaitingAsync(int count)
    {
        var guard = global::System.Diagnostics.Stopwatch.StartNew();
        while (Queue.Count != count && guard.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(5);
        }

        Queue.Count.Should().Be(count);
    }
}
