using System.ClientModel.Primitives;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Http.Resilience;

namespace Polly.PriorityRouting.SdkTests.Support;

/// <summary>
/// A DI container with the named <see cref="HttpClient"/> "aoai" registered exactly as the README documents it:
/// an outer retry that honours <c>Retry-After</c>, priority routing, and a per-attempt timeout — or, if given, the
/// <c>pipeline</c> a recipe composes.
/// </summary>
internal sealed class SdkClientHost : IDisposable
{
    public const string ClientName = "aoai";

    private readonly ServiceProvider _services;

    public SdkClientHost(
        PriorityRoutingStrategyOptions options,
        bool outerRetry = true,
        Action<ResiliencePipelineBuilder<HttpResponseMessage>>? pipeline = null)
    {
        options.StateStore ??= new InMemoryBackendStateStore();
        Options = options;
        pipeline ??= b =>
        {
            if (outerRetry)
            {
                b.AddRetry(new HttpRetryStrategyOptions { ShouldRetryAfterHeader = true });
            }

            b.AddPriorityRouting(options)
             .AddTimeout(TimeSpan.FromSeconds(30));
        };
        var services = new ServiceCollection();
        // No BaseAddress: the SDKs send absolute request URIs, and the routing replaces their scheme, host and port.
        services.AddHttpClient(ClientName)
            .AddResilienceHandler(ClientName, pipeline);
        _services = services.BuildServiceProvider();
        Client = _services.GetRequiredService<IHttpClientFactory>().CreateClient(ClientName);
        Transport = new HttpClientPipelineTransport(Client);
    }

    public PriorityRoutingStrategyOptions Options { get; }

    public HttpClient Client { get; }

    /// <summary>The SDK transport over <see cref="Client"/>: every SDK call goes through the routing pipeline.</summary>
    public HttpClientPipelineTransport Transport { get; }

    /// <summary>Routes over <paramref name="backends"/>, each with its priority and, if given, its own headers.</summary>
    public static PriorityRoutingStrategyOptions Route(params (FakeOpenAIBackend Backend, int Priority, string? Header, string? Value)[] backends)
    {
        var options = new PriorityRoutingStrategyOptions();
        foreach (var (backend, priority, header, value) in backends)
        {
            var routed = new PriorityBackend { Name = backend.Name, BaseAddress = backend.Address, Priority = priority };
            if (header is not null)
            {
                routed.Headers[header] = value!;
            }

            options.Backends.Add(routed);
        }

        return options;
    }

    public void Dispose()
    {
        Transport.Dispose();
        Client.Dispose();
        _services.Dispose();
    }
}
