using Microsoft.Extensions.DependencyInjection;
using Polly.PriorityRouting;

namespace Polly.PriorityRouting.Redis.Tests.Support;

/// <summary>
/// One replica of an app that calls its backends through an <see cref="IHttpClientFactory"/> client whose resilience
/// handler routes by priority over the Redis store of its own service provider.
/// </summary>
public static class RoutedHost
{
    public const string ClientName = "routed";

    public static async Task<Replica> StartAsync(string configuration, string keyPrefix, params FakeBackendServer[] backendsByPriority)
    {
        var replica = await Replica.StartAsync(configuration, keyPrefix, DateTimeOffset.UtcNow, services => services
            .AddHttpClient(ClientName)
            .AddResilienceHandler("priority", (builder, context) => builder.AddPriorityRouting(new PriorityRoutingStrategyOptions
            {
                StateStore = context.ServiceProvider.GetRequiredService<IBackendStateStore>(),
                Backends = [.. backendsByPriority.Select((backend, index) => new PriorityBackend
                {
                    Name = $"backend-{index + 1}",
                    BaseAddress = backend.BaseAddress,
                    Priority = index + 1,
                })],
            })));
        return replica;
    }

    public static HttpClient CreateClient(this Replica replica)
        => replica.Services.GetRequiredService<IHttpClientFactory>().CreateClient(ClientName);
}
