using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.DependencyInjection;

namespace Polly.PriorityRouting.Benchmarks;

/// <summary>
/// The price of a body that goes back to the caller: a pass-through Polly strategy, then benchmark (d) — priority
/// routing over 3 backends — with the defaults (the body is watched for how it ends) and with
/// <see cref="PriorityRoutingStrategyOptions.FirstByteTimeout"/> on, each request reading its small body to the end and
/// disposing it, as a caller does. The differences are the watcher's wrappers, then the read-ahead and timeout source.
/// </summary>
[MemoryDiagnoser]
[MinColumn]
[MedianColumn]
public class FirstByteBenchmarks
{
    private const string PlaceholderAddress = "http://placeholder/openai/deployments/gpt/chat/completions?api-version=2024-10-21";

    private readonly byte[] _buffer = new byte[256];
    private ServiceProvider? _services;
    private HttpMessageInvoker _passThrough = null!;
    private HttpMessageInvoker _off = null!;
    private HttpMessageInvoker _on = null!;
    private HttpMessageInvoker _latencyAware = null!;

    [GlobalSetup]
    public void Setup()
    {
        var services = new ServiceCollection();
        services.AddHttpClient("passThrough")
            .ConfigurePrimaryHttpMessageHandler(() => new FreshBodyBackendHandler())
            .AddResilienceHandler("passThrough", b => b.AddStrategy(_ => new PassThroughStrategy(), new PassThroughOptions()));
        Add(services, "off", _ => { });
        Add(services, "on", o => o.FirstByteTimeout = TimeSpan.FromSeconds(30));
        Add(services, "latencyAware", o =>
        {
            o.FirstByteTimeout = TimeSpan.FromSeconds(30);
            o.SelectionMode = BackendSelectionMode.LatencyAware;
        });
        _services = services.BuildServiceProvider();
        var factory = _services.GetRequiredService<IHttpMessageHandlerFactory>();
        _passThrough = new HttpMessageInvoker(factory.CreateHandler("passThrough"), disposeHandler: false);
        _off = new HttpMessageInvoker(factory.CreateHandler("off"), disposeHandler: false);
        _on = new HttpMessageInvoker(factory.CreateHandler("on"), disposeHandler: false);
        _latencyAware = new HttpMessageInvoker(factory.CreateHandler("latencyAware"), disposeHandler: false);
    }

    [GlobalCleanup]
    public void Cleanup() => _services?.Dispose();

    [Benchmark(Baseline = true, Description = "(a') one pass-through strategy, body read")]
    public Task<int> PassThrough() => SendAndRead(_passThrough);

    [Benchmark(Description = "(d) 3 backends, body read, defaults (FirstByteTimeout off)")]
    public Task<int> Off() => SendAndRead(_off);

    [Benchmark(Description = "(d) 3 backends, body read, FirstByteTimeout on")]
    public Task<int> On() => SendAndRead(_on);

    [Benchmark(Description = "(d) 3 backends, body read, FirstByteTimeout on + latency-aware")]
    public Task<int> LatencyAware() => SendAndRead(_latencyAware);

    private static void Add(IServiceCollection services, string name, Action<PriorityRoutingStrategyOptions> configure)
        => services.AddHttpClient(name)
            .ConfigurePrimaryHttpMessageHandler(() => new FreshBodyBackendHandler())
            .AddResilienceHandler(name, b =>
            {
                var options = new PriorityRoutingStrategyOptions { StateStore = new InMemoryBackendStateStore() };
                for (var i = 0; i < 3; i++)
                {
                    options.Backends.Add(new PriorityBackend { Name = $"backend{i}", BaseAddress = new Uri($"http://backend{i}/"), Priority = i == 0 ? 1 : 2 });
                }

                configure(options);
                b.AddPriorityRouting(options);
            });

    private async Task<int> SendAndRead(HttpMessageInvoker invoker)
    {
        using var response = await invoker.SendAsync(new HttpRequestMessage(HttpMethod.Post, PlaceholderAddress), CancellationToken.None).ConfigureAwait(false);
        var stream = await response.Content.ReadAsStreamAsync().ConfigureAwait(false);
        var total = 0;
        int read;
        while ((read = await stream.ReadAsync(_buffer).ConfigureAwait(false)) > 0)
        {
            total += read;
        }

        return total;
    }
}
