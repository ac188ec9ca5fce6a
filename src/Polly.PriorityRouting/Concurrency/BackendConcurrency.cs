using System.Collections.Concurrent;
using System.Runtime.CompilerServices;

namespace Polly.PriorityRouting;

/// <summary>
/// The requests in flight from this process to each backend with a cap (<see cref="PriorityBackend.MaxConcurrentRequests"/>),
/// one counter per backend identity, shared by every pipeline on one <see cref="IBackendStateStore"/> — other clients,
/// and the pipelines an options reload rebuilds, which must not start counting from zero while the old pipeline's
/// requests are still in flight.
/// </summary>
/// <remarks>
/// Keys come from configuration only (backends with a cap), never from requests: the table grows with the backends
/// ever configured with a cap, not with traffic.
/// </remarks>
internal sealed class BackendConcurrency
{
    private static readonly ConditionalWeakTable<IBackendStateStore, BackendConcurrency> ByStore = new();

    private readonly ConcurrentDictionary<BackendStateKey, InFlightCounter> _counters = new();

    /// <summary>Returns the counters of a store: created with the first pipeline on it that caps a backend.</summary>
    public static BackendConcurrency For(IBackendStateStore store) => ByStore.GetValue(store, static _ => new BackendConcurrency());

    /// <summary>Returns the counter of a backend identity.</summary>
    public InFlightCounter CounterOf(BackendStateKey key) => _counters.GetOrAdd(key, static _ => new InFlightCounter());
}
