namespace PriorityRouting.Simulation.Routers;

/// <summary>
/// LiteLLM's usage-based routing, as its documentation describes it: each deployment has a configured TPM (or RPM)
/// limit — here its true capacity per minute; the router counts what it sent in the current minute (shared by every
/// replica, as LiteLLM shares it through Redis), keeps the best <c>order</c> (priority) that has a deployment whose
/// usage plus the request still fits its limit, and picks the least used there. A 429 cools the deployment down for
/// the configured 5 seconds and the request moves on; with nothing left the caller gets a 429 without Retry-After.
/// </summary>
internal sealed class UsageBasedRouter : IRouterUnderTest
{
    public string Name => "litellm-style usage-based";

    public Uri RequestAddress(SimulationScenario scenario) => new(SimulationDriver.PlaceholderAddress, SimulationDriver.RequestPath);

    public IReadOnlyList<HttpMessageInvoker> CreateReplicas(RouterEnvironment environment, int replicaCount)
    {
        var usage = new UsageLedger(environment.Scenario.Backends);
        return [.. Enumerable.Range(0, replicaCount).Select(_ => new HttpMessageInvoker(new UsageBasedHandler(usage, environment.Time, environment.Transport)))];
    }
}
