using Polly.PriorityRouting;

namespace PriorityRouting.Simulation.Routers;

/// <summary>
/// One replica's store over the deadlines every replica shares: what the Redis store is to one process. Marks go to the
/// shared store at once and every replica reads them; what the library keeps per store instance (the budget view, the
/// health tracker) is this replica's own, as it is per process over Redis. With a budget channel, the replica's budget
/// observations travel to the others as the Redis store carries them (<see cref="SimulatedBudgetChannel"/>).
/// </summary>
/// <remarks>
/// Sharing the <see cref="InMemoryBackendStateStore"/> itself between replicas would also share the budget view — one
/// view fed by every replica's answers and spends at once, which no two processes have.
/// </remarks>
internal class ReplicaStateStore : IBackendStateStore, IBackendBudgetStore
{
    private readonly InMemoryBackendStateStore _shared;
    private readonly SimulatedBudgetChannel? _budgets;
    private readonly int _replica;

    public ReplicaStateStore(InMemoryBackendStateStore shared, SimulatedBudgetChannel? budgets)
    {
        _shared = shared;
        _budgets = budgets;
        _replica = budgets?.Join() ?? -1;
    }

    public bool TryGetUnavailability(BackendStateKey key, out BackendUnavailability unavailability)
        => _shared.TryGetUnavailability(key, out unavailability);

    public ValueTask MarkUnavailableAsync(BackendStateKey key, BackendUnavailability unavailability, DateTimeOffset now, CancellationToken cancellationToken)
        => _shared.MarkUnavailableAsync(key, unavailability, now, cancellationToken);

    public IReadOnlyList<KeyValuePair<BackendStateKey, BackendUnavailability>> GetEntries(string backend)
        => _shared.GetEntries(backend);

    public int PeerCount => _budgets?.PeersOf(_replica) ?? 0;

    public void PublishBudget(BackendStateKey key, BackendBudgetObservation observation, DateTimeOffset now)
        => _budgets?.Publish(_replica, key, observation, now);

    public void SubscribeToBudgets(Action<BackendStateKey, BackendBudgetObservation> onObservation)
        => _budgets?.Subscribe(_replica, onObservation);
}
