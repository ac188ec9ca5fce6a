namespace Polly.PriorityRouting;

/// <summary>
/// Optionally implemented by an <see cref="IBackendStateStore"/> shared by several processes: carries the rate-limit
/// budgets that answers report from the process that saw them to the others, so that every process admits requests
/// against what every answer said.
/// </summary>
/// <remarks>
/// <para>
/// The store only carries observations: each process keeps its own budget view, which decides admission, merges what
/// arrives, and counts its own spends. A store that does not implement this interface shares deadlines only, and each
/// process learns budgets from its own answers.
/// </para>
/// <para>
/// <see cref="PublishBudget"/> is called on the path of every answer that reports a budget: it must not block, perform
/// I/O on the caller's thread or throw, and may coalesce (the latest observation of a key supersedes the earlier ones)
/// and drop observations when it cannot deliver them. Observations delivered to the subscriber must bound what peers
/// control: their count, and how far their reset moments lie.
/// </para>
/// </remarks>
public interface IBackendBudgetStore
{
    /// <summary>
    /// Shares what this process's answers reported about a backend's budgets.
    /// </summary>
    /// <param name="key">The backend, and optionally the partition.</param>
    /// <param name="observation">The budgets, with reset moments on this process's clock.</param>
    /// <param name="now">This process's current time, which lets a store turn reset moments into relative delays.</param>
    void PublishBudget(BackendStateKey key, BackendBudgetObservation observation, DateTimeOffset now);

    /// <summary>
    /// Gets how many other processes share budgets through the store now (those heard from recently). A process takes
    /// <c>1 / (1 + PeerCount)</c> of a budget that refilled before any answer reported it: the callers told to come back
    /// at a refill return to every process at once.
    /// </summary>
    int PeerCount { get; }

    /// <summary>
    /// Sets the callback that receives the observations of other processes (never this process's own), with reset
    /// moments on this process's clock. The budget view of the store calls it once.
    /// </summary>
    /// <param name="onObservation">The callback; it does not block and does not throw.</param>
    void SubscribeToBudgets(Action<BackendStateKey, BackendBudgetObservation> onObservation);
}
