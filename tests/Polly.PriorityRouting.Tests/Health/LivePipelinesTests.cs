using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Polly.PriorityRouting.Tests.Health;

/// <summary>Snapshots and the health check read the backends of the live pipeline, and build nothing per call.</summary>
public sealed class LivePipelinesTests : IDisposable
{
    private const string OptionsName = "aoai-priority-routing";

    private readonly ServiceProvider _services;
    private readonly LivePipelines _live;
    private readonly IOptionsMonitor<PriorityRoutingHandlerOptions> _monitor;
    private int _builds;

    public LivePipelinesTests()
    {
        var services = new ServiceCollection();
        services.AddHttpClient("aoai").AddPriorityRoutingHandler(o =>
            o.Routing.Backends.Add(new PriorityBackend { Name = "a", BaseAddress = new Uri("https://a.example/") }));
        _services = services.BuildServiceProvider();
        _live = _services.GetRequiredService<LivePipelines>();
        _monitor = _services.GetRequiredService<IOptionsMonitor<PriorityRoutingHandlerOptions>>();
    }

    public void Dispose() => _services.Dispose();

    [Fact]
    public void Before_any_pipeline_the_backends_are_built_once_from_the_options()
    {
        var first = _live.Read(OptionsName, _monitor, Build).Pool;
        var second = _live.Read(OptionsName, _monitor, Build).Pool;

        second.Should().BeSameAs(first);
        _builds.Should().Be(1);
    }

    [Fact]
    public void The_newest_pipeline_is_live_and_an_older_one_disposed_after_it_leaves_it_so()
    {
        var old = Build(_monitor.Get(OptionsName));
        var rebuilt = Build(_monitor.Get(OptionsName));
        var oldAttachment = _live.Attach(OptionsName, old);
        var newAttachment = _live.Attach(OptionsName, rebuilt);

        // A reload builds the new pipeline before it disposes the old one.
        oldAttachment.Dispose();

        _live.Read(OptionsName, _monitor, Build).Pool.Should().BeSameAs(rebuilt);
        newAttachment.Dispose();
        _live.Read(OptionsName, _monitor, Build).Pool.Should().NotBeSameAs(rebuilt, "no pipeline is live any more");
    }

    [Fact]
    public async Task A_client_in_use_is_read_from_its_pipeline()
    {
        var transport = new Support.RecordingHandler();
        var services = new ServiceCollection();
        services.AddHttpClient("aoai").ConfigurePrimaryHttpMessageHandler(() => transport).AddPriorityRoutingHandler(o =>
            o.Routing.Backends.Add(new PriorityBackend { Name = "a", BaseAddress = new Uri("https://a.example/") }));
        using var provider = services.BuildServiceProvider();
        (await provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai").GetAsync("http://placeholder/")).Dispose();

        var read = provider.GetRequiredService<LivePipelines>()
            .Read(OptionsName, provider.GetRequiredService<IOptionsMonitor<PriorityRoutingHandlerOptions>>(), Build).Pool;

        read.Should().NotBeNull();
        _builds.Should().Be(0, "the pipeline's own backends are read");
    }

    private BackendPool Build(PriorityRoutingHandlerOptions options)
    {
        _builds++;
        return new BackendPool(options.Routing, SharedBackendState.For(new InMemoryBackendStateStore()), TimeProvider.System);
    }
}
