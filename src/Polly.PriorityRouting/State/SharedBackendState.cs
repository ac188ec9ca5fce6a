using System.Runtime.CompilerServices;

namespace Polly.PriorityRouting;

/// <summary>
/// What every pipeline on one <see cref="IBackendStateStore"/> shares in this process — other clients, and the
/// pipelines an options reload rebuilds: the store itself (marks: throttles, failures, ejections), the outlier health
/// of each backend (<see cref="BackendHealthTracker"/>: failure runs, probe slots), and the budget view
/// (<see cref="BackendBudgets"/>). A pipeline itself keeps only what is its own: latency samples and its wait queue.
/// </summary>
/// <remarks>
/// <para>
/// With <c>AddPriorityRoutingHandler</c> it is a DI singleton, created with the <see cref="IBackendStateStore"/>
/// registered in the container and living as long as the container; every client of the container on that store uses
/// it (the snapshot and the health check too).
/// </para>
/// <para>
/// Fallback, for pipelines composed in code and for a client whose options name another store: one per store
/// instance for the life of the store (<see cref="For"/>), so that pipelines built on one store share it as well.
/// </para>
/// <para>Affinity pins are not here: they live in the <see cref="IAffinityStore"/>, which is shared the same way.</para>
/// </remarks>
internal sealed class SharedBackendState
{
    private static readonly ConditionalWeakTable<IBackendStateStore, SharedBackendState> Fallback = new();

    public SharedBackendState(IBackendStateStore store)
    {
        Store = store;
        Budgets = store is IBackendBudgetStore shared ? new BackendBudgets(shared) : new BackendBudgets();
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

    /// <summary>
    /// Returns the shared state of a pipeline's store: <paramref name="fromServices"/> when it is the state of that very
    /// store, else the fallback one of the store.
    /// </summary>
    public static SharedBackendState For(IBackendStateStore store, SharedBackendState? fromServices = null)
        => fromServices is not null && ReferenceEquals(fromServices.Store, store)
            ? fromServices
            : Fallback.GetValue(store, static store => new SharedBackendState(store));
}
