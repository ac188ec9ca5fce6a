using System.ClientModel;
using System.ClientModel.Primitives;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;

namespace Polly.PriorityRouting.SdkTests.Support;

/// <summary>
/// The one-line handler (<c>AddPriorityRoutingHandler</c>) over stateful fake backends of equal priority and weight,
/// and an <see cref="OpenAIClient"/> on it. The total timeout is short so that an exhausted answer asking for a longer
/// wait comes back to the caller instead of being waited for.
/// </summary>
internal sealed class AffinityClientHost : IDisposable
{
    private readonly ServiceProvider _services;

    public AffinityClientHost(params FakeStatefulOpenAIBackend[] backends)
        : this(null, backends)
    {
    }

    public AffinityClientHost(Action<IServiceCollection>? configureServices, params FakeStatefulOpenAIBackend[] backends)
        : this(configureServices, null, backends)
    {
    }

    private AffinityClientHost(Action<IServiceCollection>? configureServices, Action<AffinityOptions>? configureAffinity, FakeStatefulOpenAIBackend[] backends)
    {
        var services = new ServiceCollection();
        configureServices?.Invoke(services);
        services.AddHttpClient("aoai").AddPriorityRoutingHandler(options =>
        {
            foreach (var backend in backends)
            {
                options.Routing.Backends.Add(new PriorityBackend { Name = backend.Name, BaseAddress = backend.Address });
            }

            options.Routing.StateStore ??= configureServices is null ? new InMemoryBackendStateStore() : null;
            options.Routing.Affinity.Store = configureServices is null ? Pins : null;
            configureAffinity?.Invoke(options.Routing.Affinity);
            options.TotalRequestTimeout.Timeout = TimeSpan.FromSeconds(10);
            options.AttemptTimeout.Timeout = TimeSpan.FromSeconds(10);
        });
        _services = services.BuildServiceProvider();
        Client = _services.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");
        Transport = new HttpClientPipelineTransport(Client);
    }

    public IServiceProvider Services => _services;

    /// <summary>Gets the pins of a host built without services of its own.</summary>
    public InMemoryAffinityStore Pins { get; } = new();

    public HttpClient Client { get; }

    public HttpClientPipelineTransport Transport { get; }

    /// <summary>A host whose affinity options are adjusted (an id extractor of its own, …).</summary>
    public static AffinityClientHost WithAffinity(Action<AffinityOptions> configureAffinity, params FakeStatefulOpenAIBackend[] backends)
        => new(null, configureAffinity, backends);

    /// <summary>An OpenAI client whose calls go through the routing client, without retries of its own.</summary>
    /// <param name="endpoint">The SDK's endpoint; only its path matters (the routing sets scheme, host and port).</param>
    public OpenAIClient OpenAI(string endpoint = "https://api.openai.com/v1")
        => new(new ApiKeyCredential("sk-placeholder"), new OpenAIClientOptions
        {
            Endpoint = new Uri(endpoint),
            Transport = Transport,
            RetryPolicy = new ClientRetryPolicy(0),
        });

    public void Dispose()
    {
        Transport.Dispose();
        Client.Dispose();
        _services.Dispose();
    }
}
