namespace PriorityRouting.Simulation.Routers;

/// <summary>
/// One way of calling the backends, as each replica of an app would set it up.
/// </summary>
internal interface IRouterUnderTest
{
    string Name { get; }

    /// <summary>Gets the address the app puts on its requests (a placeholder, or the one endpoint it knows).</summary>
    Uri RequestAddress(SimulationScenario scenario);

    /// <summary>Creates the replicas' clients for one run; state shared between replicas lives in the result.</summary>
    IReadOnlyList<HttpMessageInvoker> CreateReplicas(RouterEnvironment environment, int replicaCount);
}
