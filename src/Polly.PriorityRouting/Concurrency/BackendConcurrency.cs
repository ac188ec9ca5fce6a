using System.Collections.Concurrent;

namespace Polly.PriorityRouting;

/// <summary>
/// The requests in flight from this process to each backend with a cap (<see cref="PriorityBackend.MaxConcurrentRequests"/>),
/// one counter per backend identity, kept in the <see cref="SharedBackendState"/> of a store and so shared by every
/// pipeline on it — other clients, and the pipelines an options reload rebuilds, which must not start counting from zero
/// while the old pipeline's requests are still in flight.
/// </summary>
/// <remarks>
/// Keys come from configuration only (backends with a cap), never from requests: the table grows with the backends
/// ever configured with a cap, not with traffic.
/// </remarks>
internal sealed class BackendConcurrency
{
    private readonly ConcurrentDictionary<BackendStateKey, InFlightCounter> _counters = new();

    /// <summary>Returns the counter of a backend identity.</summary>
    public InFlightCounter CounterOf(BackendStateKey key) => _counters.GetOrAdd(key, static _ => new InFlightCounter());
}
