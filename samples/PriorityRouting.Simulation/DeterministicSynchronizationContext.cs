namespace PriorityRouting.Simulation;

/// <summary>
/// Runs what is posted to it on the simulation's own thread, in the order posted, when the driver pumps it: a call that
/// waited inside the router for a refill is released by the virtual clock's timer, and its continuation is posted here
/// (the strategy never runs a released waiter on the timer's thread), so the run stays single-threaded and
/// deterministic.
/// </summary>
internal sealed class DeterministicSynchronizationContext : SynchronizationContext
{
    private readonly Queue<(SendOrPostCallback Callback, object? State)> _posted = new();

    public override void Post(SendOrPostCallback d, object? state)
    {
        lock (_posted)
        {
            _posted.Enqueue((d, state));
        }
    }

    public override void Send(SendOrPostCallback d, object? state) => d(state);

    public override SynchronizationContext CreateCopy() => this;

    /// <summary>Runs everything posted, including what the callbacks post in turn, until nothing is left.</summary>
    /// <returns>Whether anything ran.</returns>
    public bool RunPending()
    {
        var ran = false;
        while (true)
        {
            (SendOrPostCallback Callback, object? State) next;
            lock (_posted)
            {
                if (!_posted.TryDequeue(out next))
                {
                    return ran;
                }
            }

            next.Callback(next.State);
            ran = true;
        }
    }
}
