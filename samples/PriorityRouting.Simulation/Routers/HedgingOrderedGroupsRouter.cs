using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Http.Resilience;

namespace PriorityRouting.Simulation.Routers;

/// <summary>
/// Microsoft.Extensions.Http.Resilience's answer: the standard hedging handler with one ordered group per backend,
/// best priority first, and enough hedged attempts to reach every group. Its circuit breakers and timeouts run on the
/// virtual clock (the fake <see cref="TimeProvider"/> is registered in the container).
/// </summary>
internal sealed class HedgingOrderedGroupsRouter : IRouterUnderTest
{
    private const string ClientName = "hedging";

    public string Name => "hedging, ordered groups";

    public Uri RequestAddress(SimulationScenario scenario) => new(SimulationDriver.PlaceholderAddress, SimulationDriver.RequestPath);

    public IReadOnlyList<HttpMessageInvoker> CreateReplicas(RouterEnvironment environment, int replicaCount)
        => [.. Enumerable.Range(0, replicaCount).Select(_ => CreateReplica(environment))];

    private static HttpMessageInvoker CreateReplica(RouterEnvironment environment)
    {
        var backends = environment.Scenario.Backends.OrderBy(b => b.Priority).ToList();
        var services = new ServiceCollection();
        services.AddSingleton<TimeProvider>(environment.Time);
        services.AddHttpClient(ClientName)
            .ConfigurePrimaryHttpMessageHandler(() => environment.Transport)
            .AddStandardHedgingHandler(routing => routing.ConfigureOrderedGroups(options =>
            {
                foreach (var backend in backends)
                {
                    options.Groups.Add(new UriEndpointGroup { Endpoints = { new WeightedUriEndpoint { Uri = backend.Address } } });
                }
            }))
            .Configure(options => options.Hedging.MaxHedgedAttempts = backends.Count - 1);

        // Each replica is its own process: its own container, never disposed before the run ends (the run is short).
        var provider = services.BuildServiceProvider();
        return new HttpMessageInvoker(provider.GetRequiredService<IHttpMessageHandlerFactory>().CreateHandler(ClientName), disposeHandler: false);
    }
}
