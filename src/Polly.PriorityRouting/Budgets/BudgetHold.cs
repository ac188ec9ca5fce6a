namespace Polly.PriorityRouting;

/// <summary>
/// The room a caller waiting in the strategy (<see cref="WaitQueue"/>) was promised in a refill, held in its budget: from
/// the refill's moment on — whenever the queue's timer fires, since timers fire at or after their time — everyone
/// else's admission sees the budget less this room, until the caller spends it (<see cref="BackendBudgets.TryTake(BackendStateKey, long, DateTimeOffset, BudgetHold?, DeclaredQuota?, double)"/>)
/// or gives it up (<see cref="Release"/>).
/// </summary>
/// <remarks>Its state is guarded by the lock of its <see cref="BackendBudget"/>.</remarks>
internal sealed class BudgetHold
{
    internal BudgetHold(BackendBudget budget, long cost, DateTimeOffset dueAt, long order, bool background = false)
    {
        Budget = budget;
        Cost = cost;
        DueAt = dueAt;
        Order = order;
        Background = background;
    }

    /// <summary>Gets the request's estimated tokens.</summary>
    public long Cost { get; }

    /// <summary>
    /// Gets a value indicating whether the waiter is a background request: its room holds back other background requests
    /// only; a foreground request may take it (see <see cref="BackendBudget"/>).
    /// </summary>
    public bool Background { get; }

    /// <summary>Gets the refill the room is in; moved earlier when a cancelled waiter's room passes to this one.</summary>
    public DateTimeOffset DueAt { get; internal set; }

    internal BackendBudget Budget { get; }

    /// <summary>Gets the tie-break between holds of one moment: the order they were made in.</summary>
    internal long Order { get; }

    /// <summary>Gets or sets a value indicating whether the refill came: the room counts against everyone else.</summary>
    internal bool IsDue { get; set; }

    internal bool Ended { get; set; }

    /// <summary>Gives the room back: the caller went elsewhere, gave up, or is answered. Idempotent.</summary>
    public void Release()
    {
        lock (Budget)
        {
            Budget.EndHold(this);
        }
    }
}
