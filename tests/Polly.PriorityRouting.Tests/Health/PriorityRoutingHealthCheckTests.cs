using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Time.Testing;

namespace Polly.PriorityRouting.Tests.Health;

public sealed class PriorityRoutingHealthCheckTests : IDisposable
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 24, 12, 0, 0, TimeSpan.Zero));
    private readonly InMemoryBackendStateStore _store = new();
    private readonly ServiceProvider _services;

    public PriorityRoutingHealthCheckTests()
    {
        var services = new ServiceCollection();
        services.AddSingleton<TimeProvider>(_time);
        services.AddSingleton<IBackendStateStore>(_store);
        services.AddHttpClient("aoai").AddPriorityRoutingHandler(o =>
        {
            o.Routing.Backends.Add(new PriorityBackend { Name = "ptu", BaseAddress = new Uri("https://ptu/"), Priority = 1 });
            o.Routing.Backends.Add(new PriorityBackend { Name = "east", BaseAddress = new Uri("https://east/"), Priority = 2, Weight = 3 });
            o.Routing.Backends.Add(new PriorityBackend { Name = "west", BaseAddress = new Uri("https://west/"), Priority = 2 });
        });
        services.AddHealthChecks().AddPriorityRoutingHealthCheck("aoai");
        _services = services.BuildServiceProvider();
    }

    public void Dispose() => _services.Dispose();

    [Fact]
    public async Task A_deployment_that_answers_nothing_but_429_is_not_healthy()
    {
        await Mark("ptu", 5, BackendUnavailableReason.Throttled, partition: "gpt-4o");
        var spilling = await Check();

        await Mark("east", 7, BackendUnavailableReason.Throttled, partition: "gpt-4o");
        await Mark("west", 9, BackendUnavailableReason.Throttled, partition: "gpt-4o");
        var exhausted = await Check();

        spilling.Status.Should().Be(HealthStatus.Degraded);
        spilling.Description.Should().Be("3 of 3 backends of 'aoai' available; the priority 1 tier is unavailable for partition 'gpt-4o'.");
        spilling.Data["ptu"].Should().Be("ptu (priority 1): available; gpt-4o: Throttled for 5 s");
        exhausted.Status.Should().Be(HealthStatus.Unhealthy);
        exhausted.Description.Should().Be(
            "3 of 3 backends of 'aoai' available; no backend is available for partition 'gpt-4o'; the soonest returns in 5 s.");
        var snapshot = _services.GetRequiredService<PriorityRoutingSnapshotProvider>().GetSnapshot("aoai");
        snapshot.Partitions.Should().Equal("gpt-4o");
        snapshot.IsAnyAvailable.Should().BeTrue();
        snapshot.IsAnyAvailableFor("gpt-4o").Should().BeFalse();
        snapshot.IsAnyAvailableFor("o3").Should().BeTrue();
    }

    [Fact]
    public async Task Healthy_while_the_best_tier_has_a_backend()
    {
        await Mark("east", 5, BackendUnavailableReason.Throttled);

        var report = await Check();

        report.Status.Should().Be(HealthStatus.Healthy);
        report.Description.Should().Be("2 of 3 backends of 'aoai' available.");
        report.Data["east"].Should().Be("east (priority 2): Throttled for 5 s");
        report.Data["ptu"].Should().Be("ptu (priority 1): available");
    }

    [Fact]
    public async Task Degraded_when_the_whole_best_tier_is_out()
    {
        await Mark("ptu", 5, BackendUnavailableReason.Throttled);

        var report = await Check();

        report.Status.Should().Be(HealthStatus.Degraded);
        report.Description.Should().Be("2 of 3 backends of 'aoai' available; the priority 1 tier is unavailable.");
    }

    [Fact]
    public async Task Unhealthy_when_every_backend_is_out_and_healthy_again_when_one_returns()
    {
        await Mark("ptu", 5, BackendUnavailableReason.Throttled);
        await Mark("east", 2.5, BackendUnavailableReason.ServerError);
        await Mark("west", 9, BackendUnavailableReason.TransportError);

        var report = await Check();
        report.Status.Should().Be(HealthStatus.Unhealthy);
        report.Description.Should().Be("0 of 3 backends of 'aoai' available; the soonest returns in 2.5 s.");

        _time.Advance(TimeSpan.FromSeconds(5));
        (await Check()).Status.Should().Be(HealthStatus.Healthy);
    }

    [Fact]
    public async Task The_snapshot_lists_each_backend_best_tier_first()
    {
        await Mark("west", 4, BackendUnavailableReason.Timeout);

        var snapshot = _services.GetRequiredService<PriorityRoutingSnapshotProvider>().GetSnapshot("aoai");

        snapshot.TakenAt.Should().Be(_time.GetUtcNow());
        snapshot.Backends.Select(b => (b.Name, b.Priority, b.Weight, b.IsAvailable, b.Reason, b.UnavailableUntil, b.TimeUntilAvailable)).Should().Equal(
            ("ptu", 1, 1, true, (BackendUnavailableReason?)null, (DateTimeOffset?)null, TimeSpan.Zero),
            ("east", 2, 3, true, null, null, TimeSpan.Zero),
            ("west", 2, 1, false, BackendUnavailableReason.Timeout, _time.GetUtcNow().AddSeconds(4), TimeSpan.FromSeconds(4)));
        snapshot.IsAnyAvailable.Should().BeTrue();
        snapshot.IsTopTierAvailable.Should().BeTrue();
        snapshot.TimeUntilAnyAvailable.Should().Be(TimeSpan.Zero);
    }

    [Fact]
    public async Task The_check_follows_real_traffic()
    {
        var services = new ServiceCollection();
        services.AddSingleton<IBackendStateStore>(_store);
        services.AddHttpClient("aoai")
            .ConfigurePrimaryHttpMessageHandler(() => new Support.RecordingHandler().Respond("ptu", HttpStatusCode.TooManyRequests, ("Retry-After", "30")))
            .AddPriorityRoutingHandler(o =>
            {
                o.Routing.Backends.Add(new PriorityBackend { Name = "ptu", BaseAddress = new Uri("https://ptu/") });
                o.Routing.Backends.Add(new PriorityBackend { Name = "east", BaseAddress = new Uri("https://east/"), Priority = 2 });
            });
        services.AddHealthChecks().AddPriorityRoutingHealthCheck("aoai", name: "routing");
        using var provider = services.BuildServiceProvider();
        var health = provider.GetRequiredService<HealthCheckService>();
        (await health.CheckHealthAsync()).Entries["routing"].Status.Should().Be(HealthStatus.Healthy);

        (await provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai").GetAsync("http://placeholder/")).Dispose();

        (await health.CheckHealthAsync()).Entries["routing"].Status.Should().Be(HealthStatus.Degraded);
    }

    private ValueTask Mark(string name, double seconds, BackendUnavailableReason reason, string? partition = null)
        => _store.MarkUnavailableAsync(new BackendStateKey($"{name}@https://{name}", partition), new(_time.GetUtcNow().AddSeconds(seconds), reason), _time.GetUtcNow(), default);

    private async Task<HealthReportEntry> Check()
        => (await _services.GetRequiredService<HealthCheckService>().CheckHealthAsync()).Entries["priority-routing-aoai"];
}
