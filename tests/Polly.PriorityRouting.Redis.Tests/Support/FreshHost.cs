using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace Polly.PriorityRouting.Redis.Tests.Support;

/// <summary>
/// A freshly started replica as an app runs it: a host whose start runs the hosted services, the Redis store of its
/// own service provider, and an <see cref="IHttpClientFactory"/> client routed by priority over the given backends.
/// </summary>
public sealed class FreshHost : IAsyncDisposable
{
    private readonly IHost _host;

    private FreshHost(IHost host) => _host = host;

    public HttpClient Client => _host.Services.GetRequiredService<IHttpClientFactory>().CreateClient(RoutedHost.ClientName);

    public int StoreWarnings => _host.Services.GetFakeLogCollector().GetSnapshot()
        .Count(record => record.Category == typeof(RedisBackendStateStore).FullName && record.Level == LogLevel.Warning);

    public static async Task<FreshHost> StartAsync(
        string configuration,
        string keyPrefix,
        FakeBackendServer[] backendsByPriority,
        Action<PriorityRoutingRedisStoreOptions>? configure = null)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddLogging(logging => logging.AddFakeLogging().SetMinimumLevel(LogLevel.Debug));
        builder.Services.AddPriorityRoutingRedisStore(configuration, options =>
        {
            options.KeyPrefix = keyPrefix;
            configure?.Invoke(options);
        });
        builder.Services.AddHttpClient(RoutedHost.ClientName)
            .AddResilienceHandler("priority", (pipeline, context) => pipeline.AddPriorityRouting(new PriorityRoutingStrategyOptions
            {
                StateStore = context.ServiceProvider.GetRequiredService<IBackendStateStore>(),
                Backends = [.. backendsByPriority.Select((backend, index) => new PriorityBackend
                {
                    Name = $"backend-{index + 1}",
                    BaseAddress = backend.BaseAddress,
                    Priority = index + 1,
                })],
            }));
        var host = builder.Build();
        await host.StartAsync();
        return new FreshHost(host);
    }

    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync();
        _host.Dispose();
    }
}
