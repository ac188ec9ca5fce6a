namespace PriorityRouting.Simulation.Routers;

/// <summary>
/// The Python package's behaviour (<see cref="ReplicaLocalPriorityHandler"/>), one handler and so one state per replica.
/// </summary>
internal sealed class ReplicaLocalPriorityRouter : IRouterUnderTest
{
    public string Name => "python-style, per replica";

    public Uri RequestAddress(SimulationScenario scenario) => new(SimulationDriver.PlaceholderAddress, SimulationDriver.RequestPath);

    public IReadOnlyList<HttpMessageInvoker> CreateReplicas(RouterEnvironment environment, int replicaCount)
        => [.. Enumerable.Range(0, replicaCount).Select(replica => new HttpMessageInvoker(
            new ReplicaLocalPriorityHandler(environment.Scenario.Backends, environment.Time, environment.RandomFor(replica), environment.Transport)))];
}
