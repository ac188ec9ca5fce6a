using Polly.PriorityRouting;

namespace PriorityRouting.Simulation.Routers;

/// <summary>
/// One replica's store over the deadlines every replica shares: what the Redis store is to one process. Marks go to the
/// shared store at once and every replica reads them; what the library keeps per store instance (the budget view, the
/// health tracker) is this replica's own, as it is per process over Redis.
/// </summary>
/// <remarks>
/// Sharing the <see cref="InMemoryBackendStateStore"/> itself between replicas would also share the budget view — one
/// view fed by every replica's answers and spends, which no two processes have.
/// </remarks>
internal sealed class ReplicaStateStore(InMemoryBackendStateStore shared) : IBackendStateStore
{
    public bool TryGetUnavailability(BackendStateKey key, out BackendUnavailability unavailability)
        => shared.TryGetUnavailability(key, out unavailability);

    public ValueTask MarkUnavailableAsync(BackendStateKey key, BackendUnavailability unavailability, DateTimeOffset now, CancellationToken cancellationToken)
        => shared.MarkUnavailableAsync(key, unavailability, now, cancellationToken);

    public IReadOnlyList<KeyValuePair<BackendStateKey, BackendUnavailability>> GetEntries(string backend)
        => shared.GetEntries(backend);
}
