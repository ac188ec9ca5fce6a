namespace PriorityRouting.Simulation.Routers;

/// <summary>
/// One way of calling the backends, as each replica of an app would set it up.
/// </summary>
internal interface IRouterUnderTest
{
    string Name { get; }

    /// <summary>Gets the address the app puts on its requests (a placeholder, or the one endpoint it knows).</summary>
    Uri RequestAddress(SimulationScenario scenario);

    /// <summary>
    /// Gets a value indicating whether the router releases a call that waited inside it asynchronously (to the caller's
    /// captured context, else the thread pool): the driver then runs it on a <see cref="DeterministicSynchronizationContext"/>.
    /// </summary>
    bool ReleasesWaitersAsynchronously => false;

    /// <summary>Creates the replicas' clients for one run; state shared between replicas lives in the result.</summary>
    IReadOnlyList<HttpMessageInvoker> CreateReplicas(RouterEnvironment environment, int replicaCount);
}
