using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Health;

/// <summary>An invalid reload fails loudly (a Warning naming the field) and harmlessly (nothing throws, routing goes on).</summary>
public sealed class RejectedReloadTests : IDisposable
{
    private const string Rejection = "HttpClient 'aoai': Routing.Backends[1].Weight must be between 1 and 1000, but was 0.";

    private readonly IConfigurationRoot _configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
    {
        ["PriorityRouting:Routing:Backends:0:Name"] = "a",
        ["PriorityRouting:Routing:Backends:0:BaseAddress"] = "https://a.example/",
        ["PriorityRouting:Routing:Backends:1:Name"] = "b",
        ["PriorityRouting:Routing:Backends:1:BaseAddress"] = "https://b.example/",
        ["PriorityRouting:Routing:Backends:1:Priority"] = "2",
    }).Build();

    private readonly RecordingHandler _transport = new();
    private readonly ServiceProvider _services;

    public RejectedReloadTests()
    {
        var services = new ServiceCollection();
        services.AddLogging(logging => logging.AddFakeLogging());
        services.AddSingleton<IBackendStateStore>(new InMemoryBackendStateStore());
        services.AddHttpClient("aoai")
            .ConfigurePrimaryHttpMessageHandler(() => _transport)
            .AddPriorityRoutingHandler(_configuration.GetSection("PriorityRouting"));
        services.AddHealthChecks().AddPriorityRoutingHealthCheck("aoai");
        _services = services.BuildServiceProvider();
    }

    public void Dispose() => _services.Dispose();

    [Fact]
    public async Task An_invalid_reload_keeps_routing_and_is_reported_by_a_warning_the_snapshot_and_the_health_check()
    {
        var client = _services.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");
        (await client.GetAsync("http://placeholder/")).Dispose();

        Reload(("PriorityRouting:Routing:Backends:1:Weight", "0"));

        var snapshot = _services.GetRequiredService<PriorityRoutingSnapshotProvider>().GetSnapshot("aoai");
        snapshot.Backends.Select(b => (b.Name, b.Weight)).Should().Equal(("a", 1), ("b", 1));
        snapshot.RejectedReload.Should().Equal(Rejection);
        var health = await Check();
        health.Status.Should().Be(HealthStatus.Degraded);
        health.Description.Should().Be(
            $"2 of 2 backends of 'aoai' available. A configuration reload was rejected; routing keeps the last good configuration: {Rejection}");
        health.Data["rejectedReload"].Should().Be(Rejection);
        _services.GetRequiredService<FakeLogCollector>().GetSnapshot()
            .Where(r => r.Level >= LogLevel.Warning && r.Category == "Polly.PriorityRouting")
            .Select(r => (r.Level, r.Message)).Should().Equal((LogLevel.Warning,
                $"A configuration reload of the priority routing handler of HttpClient 'aoai' was rejected; routing keeps the last good configuration. {Rejection}"));
        (await client.GetAsync("http://placeholder/")).Dispose();
        _transport.Hosts.Should().Equal("a.example", "a.example");

        Reload(("PriorityRouting:Routing:Backends:1:Weight", "3"));

        _services.GetRequiredService<PriorityRoutingSnapshotProvider>().GetSnapshot("aoai").RejectedReload.Should().BeEmpty();
        (await Check()).Status.Should().Be(HealthStatus.Healthy);
    }

    [Fact]
    public async Task Before_any_request_the_snapshot_shows_the_last_good_configuration_after_an_invalid_reload()
    {
        _services.GetRequiredService<PriorityRoutingSnapshotProvider>().GetSnapshot("aoai").Backends.Should().HaveCount(2);

        Reload(("PriorityRouting:Routing:Backends:1:Weight", "0"));

        var snapshot = _services.GetRequiredService<PriorityRoutingSnapshotProvider>().GetSnapshot("aoai");
        snapshot.Backends.Select(b => b.Name).Should().Equal("a", "b");
        snapshot.RejectedReload.Should().Equal(Rejection);
        (await Check()).Status.Should().Be(HealthStatus.Degraded);
    }

    [Fact]
    public async Task With_a_host_a_reload_rejected_before_any_client_is_used_is_logged()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddConfiguration(_configuration);
        builder.Services.AddLogging(logging => logging.AddFakeLogging());
        builder.Services.AddHttpClient("aoai").AddPriorityRoutingHandler(builder.Configuration.GetSection("PriorityRouting"));
        using var host = builder.Build();
        await host.StartAsync();

        Reload(("PriorityRouting:Routing:Backends:1:Weight", "0"));

        host.Services.GetRequiredService<FakeLogCollector>().GetSnapshot()
            .Where(r => r.Category == "Polly.PriorityRouting").Select(r => (r.Level, r.Id.Id)).Should().Equal((LogLevel.Warning, 30));
        await host.StopAsync();
    }

    /// <summary>
    /// Sets keys and reloads. The options monitor validates a change inside the reload and throws the
    /// <c>OptionsValidationException</c> out of it (for a file, into the file watcher): routing never sees the change.
    /// </summary>
    private void Reload(params (string Key, string Value)[] settings)
    {
        foreach (var (key, value) in settings)
        {
            _configuration[key] = value;
        }

        try
        {
            _configuration.Reload();
        }
        catch (AggregateException e) when (e.Flatten().InnerExceptions.All(inner => inner is Microsoft.Extensions.Options.OptionsValidationException))
        {
        }
    }

    private async Task<HealthReportEntry> Check()
        => (await _services.GetRequiredService<HealthCheckService>().CheckHealthAsync()).Entries["priority-routing-aoai"];
}
