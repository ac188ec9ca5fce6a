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

    /// <summary>
    /// Any request URI: the strategy replaces its scheme, host and port with the chosen backend's.
    /// </summary>
    public const string AnyPath = "http://placeholder/v1/chat/completions";

    public static Task<Replica> StartAsync(string configuration, string keyPrefix, params FakeBackendServer[] backendsByPriority)
        => StartAsync(configuration, keyPrefix, [.. backendsByPriority.Select((backend, index) => ($"backend-{index + 1}", backend))]);

    /// <summary>
    /// Starts a replica whose backends, by priority, have the given names.
    /// </summary>
    public static async Task<Replica> StartAsync(string configuration, string keyPrefix, (string Name, FakeBackendServer Server)[] backendsByPriority)
    {
        var replica = await Replica.StartAsync(configuration, keyPrefix, DateTimeOffset.UtcNow, services => services
            .AddHttpClient(ClientName)
            .AddResilienceHandler("priority", (builder, context) => builder.AddPriorityRouting(new PriorityRoutingStrategyOptions
            {
                StateStore = context.ServiceProvider.GetRequiredService<IBackendStateStore>(),
                Backends = [.. backendsByPriority.Select((backend, index) => new PriorityBackend
                {
                    Name = backend.Name,
                    BaseAddress = backend.Server.BaseAddress,
                    Priority = index + 1,
                })],
            })));
        return replica;
    }

    /// <summary>
    /// Returns the store key of a named backend: its identity is its name and its address (<c>{name}@{location}</c>).
    /// </summary>
    public static BackendStateKey StateKeyOf(string name, FakeBackendServer server)
        => new($"{name}@{server.BaseAddress.GetLeftPart(UriPartial.Authority)}");

    public static HttpClient CreateClient(this Replica replica)
        => replica.Services.GetRequiredService<IHttpClientFactory>().CreateClient(ClientName);

    /// <summary>
    /// Sends requests one after the other and returns how many did not answer 200.
    /// </summary>
    public static async Task<int> SendAsync(this HttpClient client, int count)
    {
        var failed = 0;
        for (var i = 0; i < count; i++)
        {
            using var answer = await client.GetAsync(AnyPath);
            failed += answer.StatusCode == System.Net.HttpStatusCode.OK ? 0 : 1;
        }

        return failed;
    }
}
