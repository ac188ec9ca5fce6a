namespace Polly.PriorityRouting;

/// <summary>
/// One pipeline's cap on a backend (<see cref="PriorityBackend.MaxConcurrentRequests"/>) over the counter its identity
/// shares in the process (<see cref="BackendConcurrency"/>).
/// </summary>
internal sealed class InFlightLimit(InFlightCounter counter, int cap)
{
    public int Cap { get; } = cap;

    /// <summary>Gets the requests in flight to the backend from this process, whichever pipeline sent them.</summary>
    public int InFlight => counter.Count;

    /// <summary>Gets a value indicating whether no slot is free now (a read: admission is <see cref="TryEnter"/>).</summary>
    public bool IsFull => counter.Count >= Cap;

    /// <summary>Returns a task that completes when the next slot is given back to a waiter of the request's class (see <see cref="InFlightCounter"/>).</summary>
    public Task WhenReleased(bool background) => counter.WhenReleased(background);

    /// <inheritdoc cref="InFlightCounter.BeginForegroundTurn"/>
    public void BeginForegroundTurn() => counter.BeginForegroundTurn();

    /// <inheritdoc cref="InFlightCounter.EndForegroundTurn"/>
    public void EndForegroundTurn() => counter.EndForegroundTurn(Cap);

    /// <summary>Takes a slot if one is free.</summary>
    /// <returns>The slot, which gives the count back once when its owner disposes it; <see langword="null"/> at the cap.</returns>
    public InFlightSlot? TryEnter() => counter.TryEnter(Cap) ? new InFlightSlot(counter) : null;
}
