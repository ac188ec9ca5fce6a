namespace Polly.PriorityRouting;

/// <summary>
/// One request's place among a capped backend's requests in flight. The attempt owns it (through its
/// <see cref="BackendLease"/>) until the answer's body is handed to the caller; from then on the watched body owns it
/// (<see cref="WatchedStream"/>) and gives it back when the body ends — read to the end, disposed, broken. Giving it
/// back is idempotent: the count drops exactly once whichever owner disposes it, and however often.
/// </summary>
internal sealed class InFlightSlot(InFlightCounter counter) : IDisposable
{
    private InFlightCounter? _counter = counter;
    private int _handedToBody;

    /// <summary>Gets a value indicating whether the slot is still counted.</summary>
    public bool IsHeld => Volatile.Read(ref _counter) is not null;

    /// <summary>The answer's body goes to the caller: the slot stays counted until the body ends, not until the attempt does.</summary>
    public void HandToBody() => Volatile.Write(ref _handedToBody, 1);

    /// <summary>The attempt is over: gives the slot back unless the body took it.</summary>
    public void EndAttempt()
    {
        if (Volatile.Read(ref _handedToBody) == 0)
        {
            Dispose();
        }
    }

    /// <summary>Gives the slot back; once.</summary>
    public void Dispose() => Interlocked.Exchange(ref _counter, null)?.Exit();
}
