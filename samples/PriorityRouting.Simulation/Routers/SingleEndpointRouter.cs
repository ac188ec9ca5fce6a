namespace PriorityRouting.Simulation.Routers;

/// <summary>
/// What most apps have today: one endpoint (the priority-1 deployment) and a retry that waits the Retry-After it is
/// told. The waiting is done by the simulation's client on the virtual clock, for every router alike.
/// </summary>
internal sealed class SingleEndpointRouter : IRouterUnderTest
{
    public string Name => "one endpoint + retry";

    public Uri RequestAddress(SimulationScenario scenario)
        => new(scenario.Backends.OrderBy(b => b.Priority).First().Address, SimulationDriver.RequestPath);

    public IReadOnlyList<HttpMessageInvoker> CreateReplicas(RouterEnvironment environment, int replicaCount)
        => [.. Enumerable.Range(0, replicaCount).Select(_ => new HttpMessageInvoker(environment.Transport, disposeHandler: false))];
}
