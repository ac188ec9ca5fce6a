using Microsoft.Extensions.Http.Resilience;
using Polly;
using Polly.PriorityRouting;

namespace PriorityRouting.Simulation.Routers;

/// <summary>
/// Ours: the priority routing strategy in a <see cref="ResilienceHandler"/>, on the virtual clock. With
/// <c>sharedStore</c> every replica uses one store (what the Redis store gives across processes); without it, each
/// replica has its own in-memory store.
/// </summary>
internal sealed class PriorityRoutingRouter(bool sharedStore) : IRouterUnderTest
{
    public string Name => sharedStore ? "ours, shared store" : "ours, store per replica";

    public Uri RequestAddress(SimulationSettings settings) => new(SimulationDriver.PlaceholderAddress, SimulationDriver.RequestPath);

    public IReadOnlyList<HttpMessageInvoker> CreateReplicas(RouterEnvironment environment, int replicaCount)
    {
        var shared = new InMemoryBackendStateStore();
        return [.. Enumerable.Range(0, replicaCount).Select(replica =>
            CreateReplica(environment, sharedStore ? shared : new InMemoryBackendStateStore(), environment.RandomFor(replica)))];
    }

    private static HttpMessageInvoker CreateReplica(RouterEnvironment environment, IBackendStateStore store, Random random)
    {
        var options = new PriorityRoutingStrategyOptions { StateStore = store };
        foreach (var backend in environment.Settings.Backends)
        {
            options.Backends.Add(new PriorityBackend { Name = backend.Name, BaseAddress = backend.Address, Priority = backend.Priority });
        }

        // The options' Randomizer is internal (visible to this project): seeded per replica, the run is reproducible.
        options.Randomizer = random.Next;

        var pipeline = new ResiliencePipelineBuilder<HttpResponseMessage> { TimeProvider = environment.Time }
            .AddPriorityRouting(options)
            .Build();
        return new HttpMessageInvoker(new ResilienceHandler(pipeline) { InnerHandler = environment.Transport }, disposeHandler: false);
    }
}
