using System.Diagnostics;
using Microsoft.Extensions.Time.Testing;

namespace Polly.PriorityRouting.Tests.Properties;

/// <summary>
/// The pipeline's clock in <see cref="EveryFeatureProperties"/>: a <see cref="FakeTimeProvider"/> the driver moves in
/// steps, observed so that the driver knows when requests waiting in the strategy are released and when they run.
/// </summary>
/// <remarks>
/// A released waiter may continue inline in the timer callback (inside <see cref="FakeTimeProvider.Advance"/>) or on
/// the thread pool afterwards; the model must judge each request against the clock it ran at, so the clock must not
/// move while a request runs. Each request's code runs under an execution context that carries it
/// (<see cref="Current"/>): the notifications of that <see cref="AsyncLocal{T}"/> tell when a thread enters and leaves a
/// request, whatever thread and however late. The driver waits, bounded, until released requests have run before it
/// moves the clock again, and a request that still overlapped a step of the clock (<see cref="LiveRequest.Overlapped"/>)
/// is not judged on anything that depends on the time.
/// </remarks>
internal sealed class EveryFeatureClock : TimeProvider
{
    private static readonly AsyncLocal<LiveRequest?> CurrentRequest = new(OnContextChanged);

    private readonly FakeTimeProvider _time;
    private int _fired;

    /// <summary>
    /// Gets the synchronization context requests are sent under (their resilience context continues on it): a released
    /// waiter's continuation is posted here, and the driver runs it — on its own thread, before the clock moves again.
    /// </summary>
    public DriverContext Context { get; } = new();

    public EveryFeatureClock(FakeTimeProvider time) => _time = time;

    /// <summary>Gets the request whose code runs on this thread, if any.</summary>
    public static LiveRequest? Current => CurrentRequest.Value;

    private int _step;

    /// <summary>Gets how many steps of the clock have begun: a request running across two of them overlapped a step.</summary>
    public int Step => Volatile.Read(ref _step);

    /// <summary>Gets when a timer of the pipeline last fired (a wait queue releasing its waiters).</summary>
    public DateTimeOffset LastFire { get; private set; }

    public FakeTimeProvider Fake => _time;

    public override TimeZoneInfo LocalTimeZone => _time.LocalTimeZone;

    public override long TimestampFrequency => _time.TimestampFrequency;

    /// <summary>Runs code (a send) as the given request: its continuations carry it, wherever they run.</summary>
    public static T As<T>(LiveRequest request, Func<T> action)
    {
        var previous = CurrentRequest.Value;
        CurrentRequest.Value = request;
        try
        {
            return action();
        }
        finally
        {
            CurrentRequest.Value = previous;
        }
    }

    public override DateTimeOffset GetUtcNow() => _time.GetUtcNow();

    public override long GetTimestamp() => _time.GetTimestamp();

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        => _time.CreateTimer(
            s =>
            {
                LastFire = _time.GetUtcNow();
                Interlocked.Increment(ref _fired);
                callback(s);
            },
            state,
            dueTime,
            period);

    /// <summary>
    /// Moves the clock by one step, off any synchronization context (as a timer thread fires), then waits, bounded,
    /// until every waiter it released has run: running requests have left, and the thread pool holds no queued work.
    /// </summary>
    public void Advance(TimeSpan by, IEnumerable<LiveRequest> pending)
    {
        Interlocked.Increment(ref _step);
        var fired = Volatile.Read(ref _fired);
        WithoutContext(() => _time.Advance(by));
        Context.RunAll();
        if (Volatile.Read(ref _fired) != fired)
        {
            // Only a continuation that ignored the captured context would still run elsewhere.
            Settle(pending);
        }
    }

    /// <summary>
    /// Waits, bounded, until no pending request runs, none is still being completed (its body read, which may eject a
    /// backend: a request sent meanwhile would be admitted before that ejection and judged after it), and nothing is
    /// queued to run.
    /// </summary>
    public static void Settle(IEnumerable<LiveRequest> pending)
    {
        var watch = Stopwatch.StartNew();
        var quiet = 0;
        while (quiet < 3 && watch.Elapsed < TimeSpan.FromSeconds(5))
        {
            var busy = pending.Any(p => (!p.Done && Volatile.Read(ref p.Running) > 0) || (p.Done && !Volatile.Read(ref p.Finished))) ||
                       ThreadPool.PendingWorkItemCount > 0;
            quiet = busy ? 0 : quiet + 1;
            Thread.Sleep(busy ? 0 : 1);
        }
    }

    public static void WithoutContext(Action action)
    {
        var context = SynchronizationContext.Current;
        SynchronizationContext.SetSynchronizationContext(null);
        try
        {
            action();
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(context);
        }
    }

    private static void OnContextChanged(AsyncLocalValueChangedArgs<LiveRequest?> change)
    {
        if (ReferenceEquals(change.PreviousValue, change.CurrentValue))
        {
            return;
        }

        change.PreviousValue?.Leave();
        change.CurrentValue?.Enter();
    }

    /// <summary>A synchronization context whose posted work runs when the driver says, on the driver's thread.</summary>
    internal sealed class DriverContext : SynchronizationContext
    {
        private readonly Queue<(SendOrPostCallback Callback, object? State)> _work = new();

        public override void Post(SendOrPostCallback d, object? state)
        {
            lock (_work)
            {
                _work.Enqueue((d, state));
            }
        }

        public override void Send(SendOrPostCallback d, object? state) => d(state);

        public override SynchronizationContext CreateCopy() => this;

        /// <summary>Runs everything posted, and what that posts in turn, until nothing is left.</summary>
        public void RunAll()
        {
            while (true)
            {
                (SendOrPostCallback Callback, object? State) next;
                lock (_work)
                {
                    if (!_work.TryDequeue(out next))
                    {
                        return;
                    }
                }

                var previous = Current;
                SetSynchronizationContext(this);
                try
                {
                    next.Callback(next.State);
                }
                finally
                {
                    SetSynchronizationContext(previous);
                }
            }
        }

        /// <summary>Runs the action with this context as the current one, then what it posted.</summary>
        public T Run<T>(Func<T> action)
        {
            var previous = Current;
            SetSynchronizationContext(this);
            try
            {
                return action();
            }
            finally
            {
                SetSynchronizationContext(previous);
                RunAll();
            }
        }
    }
}
