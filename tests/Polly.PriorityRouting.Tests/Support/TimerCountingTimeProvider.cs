using Microsoft.Extensions.Time.Testing;

namespace Polly.PriorityRouting.Tests.Support;

/// <summary>A fake clock that counts the timers created on it: a bounded wait (a <c>Task.Delay</c> on the clock) has begun once its timer exists.</summary>
internal sealed class TimerCountingTimeProvider(DateTimeOffset start) : FakeTimeProvider(start)
{
    private int _created;

    /// <summary>Gets how many timers were created so far (the pipeline's own included: its wait queue's).</summary>
    public int Created => Volatile.Read(ref _created);

    /// <summary>Waits, for a few real seconds at most, until <paramref name="count"/> timers were created.</summary>
    public bool WaitForTimers(int count) => SpinWait.SpinUntil(() => Volatile.Read(ref _created) >= count, TimeSpan.FromSeconds(10));

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        Interlocked.Increment(ref _created);
        return base.CreateTimer(callback, state, dueTime, period);
    }
}
