using System.Net;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Time.Testing;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Health;

public class PriorityRoutingHealthCheckModelTests
{
    [Fact]
    public async Task A_model_whose_every_serving_backend_is_throttled_is_not_reported_healthy()
    {
        // Defect: PriorityRoutingHealthCheck (Health/PriorityRoutingHealthCheck.cs:185) and PriorityRoutingSnapshot.IsAnyAvailableFor
        // ask whether *any* backend of the pool is free for a partition; with model maps the partition is a backend's own
        // deployment name and only the model's backends can take it, so "o3" looks served by ptu, which does not serve o3.
        var store = new InMemoryBackendStateStore();
        var transport = new RecordingHandler()
            .Respond("east", HttpStatusCode.TooManyRequests, ("Retry-After", "600"))
            .Respond("west", HttpStatusCode.TooManyRequests, ("Retry-After", "600"));
        var services = new ServiceCollection();
        services.AddSingleton<IBackendStateStore>(store);
        services.AddSingleton<TimeProvider>(new FakeTimeProvider(new DateTimeOffset(2026, 11, 24, 12, 0, 0, TimeSpan.Zero)));
        services.AddHttpClient("aoai").ConfigurePrimaryHttpMessageHandler(() => transport).AddPriorityRoutingHandler(o =>
        {
            o.Routing.Backends.Add(new PriorityBackend { Name = "ptu", BaseAddress = new Uri("https://ptu/"), Priority = 1, Models = { ["gpt-4o"] = "gpt-4o-ptu" } });
            o.Routing.Backends.Add(new PriorityBackend { Name = "east", BaseAddress = new Uri("https://east/"), Priority = 2, Models = { ["gpt-4o"] = "gpt-4o", ["o3"] = "o3" } });
            o.Routing.Backends.Add(new PriorityBackend { Name = "west", BaseAddress = new Uri("https://west/"), Priority = 2, Models = { ["gpt-4o"] = "gpt-4o", ["o3"] = "o3-2025-04-16" } });
        });
        services.AddHealthChecks().AddPriorityRoutingHealthCheck("aoai", name: "routing");
        using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");

        using var o3 = await client.PostAsync(
            "http://placeholder/v1/chat/completions",
            new StringContent("""{"model":"o3","messages":[]}""", Encoding.UTF8, "application/json"));
        var entry = (await provider.GetRequiredService<HealthCheckService>().CheckHealthAsync()).Entries["routing"];

        o3.StatusCode.Should().Be(HttpStatusCode.TooManyRequests, "both backends that serve o3 are throttled");
        transport.Hosts.Should().BeEquivalentTo(["east", "west"], "ptu does not serve o3");
        entry.Status.Should().NotBe(HealthStatus.Healthy, "every o3 request gets the exhausted answer; the check said: {0}", entry.Description);
        entry.Status.Should().Be(HealthStatus.Unhealthy);
        entry.Description.Should().Be("3 of 3 backends of 'aoai' available; no backend is available for model 'o3'; the soonest returns in 300 s.");
    }

    [Fact]
    public async Task A_model_that_spills_past_its_own_best_tier_is_degraded()
    {
        var transport = new RecordingHandler().Respond("east", HttpStatusCode.TooManyRequests, ("Retry-After", "30"));
        var services = new ServiceCollection();
        services.AddSingleton<IBackendStateStore>(new InMemoryBackendStateStore());
        services.AddSingleton<TimeProvider>(new FakeTimeProvider(new DateTimeOffset(2026, 11, 24, 12, 0, 0, TimeSpan.Zero)));
        services.AddHttpClient("aoai").ConfigurePrimaryHttpMessageHandler(() => transport).AddPriorityRoutingHandler(o =>
        {
            o.Routing.Backends.Add(new PriorityBackend { Name = "ptu", BaseAddress = new Uri("https://ptu/"), Priority = 1, Models = { ["gpt-4o"] = "gpt-4o-ptu" } });
            o.Routing.Backends.Add(new PriorityBackend { Name = "east", BaseAddress = new Uri("https://east/"), Priority = 2, Models = { ["o3"] = "o3" } });
            o.Routing.Backends.Add(new PriorityBackend { Name = "west", BaseAddress = new Uri("https://west/"), Priority = 3, Models = { ["o3"] = "o3-2025-04-16" } });
        });
        services.AddHealthChecks().AddPriorityRoutingHealthCheck("aoai", name: "routing");
        using var provider = services.BuildServiceProvider();

        using var o3 = await provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai").PostAsync(
            "http://placeholder/v1/chat/completions",
            new StringContent("""{"model":"o3","messages":[]}""", Encoding.UTF8, "application/json"));
        var entry = (await provider.GetRequiredService<HealthCheckService>().CheckHealthAsync()).Entries["routing"];

        o3.StatusCode.Should().Be(HttpStatusCode.OK);
        transport.Hosts.Should().Equal("east", "west");
        entry.Status.Should().Be(HealthStatus.Degraded);
        entry.Description.Should().Be("3 of 3 backends of 'aoai' available; the best tier serving model 'o3' is unavailable.");
    }
}
