using System.Runtime.CompilerServices;

namespace Polly.PriorityRouting;

/// <summary>
/// What every pipeline on one <see cref="IBackendStateStore"/> shares in this process — other clients, and the
/// pipelines an options reload rebuilds: the store itself (marks: throttles, failures, ejections), the outlier health
/// of each backend (<see cref="BackendHealthTracker"/>: failure runs, probe slots), the budget view
/// (<see cref="BackendBudgets"/>), and the requests in flight to capped backends (<see cref="BackendConcurrency"/>). A
/// pipeline itself keeps only what is its own: latency samples and its wait queue.
/// </summary>
/// <remarks>
/// <para>
/// One per store instance for the life of the store (<see cref="For"/>), however the pipeline was made: the clients of
/// a container, a pipeline composed in code on the container's store, the snapshot and the health check all count one
/// run of failures and read one budget view (a store that shares budgets has one subscriber, too). With
/// <c>AddPriorityRoutingHandler</c> the state of the container's store is also its DI singleton.
/// </para>
/// <para>Affinity pins are not here: they live in the <see cref="IAffinityStore"/>, which is shared the same way.</para>
/// </remarks>
internal sealed class SharedBackendState
{
    private static readonly ConditionalWeakTable<IBackendStateStore, SharedBackendState> States = new();

    internal SharedBackendState(IBackendStateStore store)
    {
        Store = store;
        Budgets = store is IBackendBudgetStore shared ? new BackendBudgets(shared) : new BackendBudgets();
        Reservations = store as IBackendReservationStore;
    }

    /// <summary>Gets the store: the marks.</summary>
    public IBackendStateStore Store { get; }

    /// <summary>Gets the outlier health of the store's backends in this process.</summary>
    public BackendHealthTracker Health { get; } = new();

    /// <summary>
    /// Gets the budget view of the store's backends in this process. A pipeline with budgets subscribes it to the store's
    /// observations of other processes (<see cref="BackendBudgets.SubscribeOnce"/>) on its clock; the first one does.
    /// </summary>
    public BackendBudgets Budgets { get; }

    /// <summary>Gets the store's shared reservations, when it implements them (used by pipelines with budgets).</summary>
    public IBackendReservationStore? Reservations { get; }

    /// <summary>
    /// Gets the requests in flight from this process to the store's backends that have a cap
    /// (<see cref="PriorityBackend.MaxConcurrentRequests"/>): a reload must not start counting from zero while the old
    /// pipeline's requests are still in flight.
    /// </summary>
    public BackendConcurrency Concurrency { get; } = new();

    /// <summary>Returns the shared state of a store: the one of that store instance in this process.</summary>
    public static SharedBackendState For(IBackendStateStore store)
        => States.GetValue(store, static store => new SharedBackendState(store));
}
