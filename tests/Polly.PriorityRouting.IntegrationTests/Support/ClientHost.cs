using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Http.Resilience;

namespace Polly.PriorityRouting.IntegrationTests.Support;

/// <summary>
/// A DI container with one named <see cref="HttpClient"/> whose handler is a resilience pipeline around priority
/// routing, registered exactly as users do it.
/// </summary>
internal sealed class ClientHost : IDisposable
{
    public const string ClientName = "aoai";

    private readonly ServiceProvider _services;

    public ClientHost(
        PriorityRoutingStrategyOptions options,
        Action<ResiliencePipelineBuilder<HttpResponseMessage>>? outer = null,
        Action<ResiliencePipelineBuilder<HttpResponseMessage>>? inner = null,
        Func<HttpMessageHandler>? primaryHandler = null)
    {
        options.StateStore ??= new InMemoryBackendStateStore();
        Options = options;
        var services = new ServiceCollection();
        var client = services.AddHttpClient(ClientName, c => c.BaseAddress = new Uri("http://placeholder/"));
        if (primaryHandler is not null)
        {
            client.ConfigurePrimaryHttpMessageHandler(primaryHandler);
        }

        client.AddResilienceHandler(ClientName, b =>
        {
            outer?.Invoke(b);
            b.AddPriorityRouting(options);
            inner?.Invoke(b);
        });
        _services = services.BuildServiceProvider();
        Client = _services.GetRequiredService<IHttpClientFactory>().CreateClient(ClientName);
    }

    public PriorityRoutingStrategyOptions Options { get; }

    public HttpClient Client { get; }

    public static PriorityRoutingStrategyOptions Route(params (FakeBackend Backend, int Priority)[] backends) => new()
    {
        Backends = [.. backends.Select(b => new PriorityBackend { Name = b.Backend.Name, BaseAddress = b.Backend.Address, Priority = b.Priority })],
    };

    public void Dispose()
    {
        Client.Dispose();
        _services.Dispose();
    }
}
