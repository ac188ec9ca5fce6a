using Microsoft.Extensions.DependencyInjection;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.State;

public class SharedBackendStateTests
{
    [Fact]
    public void Pipelines_composed_in_code_on_one_store_share_one_state_and_other_stores_have_their_own()
    {
        var store = new InMemoryBackendStateStore();

        var shared = SharedBackendState.For(store);

        SharedBackendState.For(store).Should().BeSameAs(shared);
        shared.Store.Should().BeSameAs(store);
        SharedBackendState.For(new InMemoryBackendStateStore()).Should().NotBeSameAs(shared);
        SharedBackendState.For(new InMemoryBackendStateStore()).Health.Should().NotBeSameAs(shared.Health);
    }

    [Fact]
    public async Task Every_client_of_a_container_shares_the_health_of_its_store_and_ejects_a_failing_backend_for_all()
    {
        var store = new InMemoryBackendStateStore();
        var services = new ServiceCollection();
        services.AddSingleton<IBackendStateStore>(store);
        var transport = new RecordingHandler().Respond("a", System.Net.HttpStatusCode.ServiceUnavailable);
        foreach (var name in new[] { "first", "second" })
        {
            services.AddHttpClient(name)
                .ConfigurePrimaryHttpMessageHandler(() => transport)
                .AddPriorityRoutingHandler(o =>
                {
                    o.Routing.Backends.Add(RoutingHarness.Backend("a", 1));
                    o.Routing.Backends.Add(RoutingHarness.Backend("b", 2));
                    o.Routing.DefaultCooldown = TimeSpan.Zero;
                    o.Routing.OutlierEjection.ConsecutiveFailures = 2;
                });
        }

        using var provider = services.BuildServiceProvider();
        var factory = provider.GetRequiredService<IHttpClientFactory>();

        // One failure of a through each client: a run of two for the store's backend, which ejects it.
        (await factory.CreateClient("first").GetAsync("/")).Dispose();
        (await factory.CreateClient("second").GetAsync("/")).Dispose();

        provider.GetRequiredService<SharedBackendState>().Store.Should().BeSameAs(store);
        store.TryGetUnavailability(RoutingHarness.Key("a"), out var mark).Should().BeTrue();
        mark.Reason.Should().Be(BackendUnavailableReason.Ejected, "the two clients counted one run of failures");
    }

    [Fact]
    public async Task A_pipeline_composed_in_code_on_the_container_s_store_counts_one_run_of_failures_with_its_clients()
    {
        var store = new InMemoryBackendStateStore();
        var services = new ServiceCollection();
        services.AddSingleton<IBackendStateStore>(store);
        var transport = new RecordingHandler().Respond("a", System.Net.HttpStatusCode.ServiceUnavailable);
        services.AddHttpClient("client")
            .ConfigurePrimaryHttpMessageHandler(() => transport)
            .AddPriorityRoutingHandler(o =>
            {
                o.Routing.Backends.Add(RoutingHarness.Backend("a", 1));
                o.Routing.Backends.Add(RoutingHarness.Backend("b", 2));
                o.Routing.DefaultCooldown = TimeSpan.Zero;
                o.Routing.OutlierEjection.ConsecutiveFailures = 2;
            });
        using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("client");
        using var composed = new RoutingHarness(
            o =>
            {
                o.StateStore = provider.GetRequiredService<IBackendStateStore>();
                o.DefaultCooldown = TimeSpan.Zero;
                o.OutlierEjection.ConsecutiveFailures = 2;
            },
            RoutingHarness.Backend("a", 1),
            RoutingHarness.Backend("b", 2));
        composed.Transport.Respond("a", System.Net.HttpStatusCode.ServiceUnavailable);

        // One failure of a through each: a run of two for the store's backend, which ejects it.
        (await composed.Client.GetAsync("/")).Dispose();
        (await client.GetAsync("/")).Dispose();

        store.TryGetUnavailability(RoutingHarness.Key("a"), out var mark).Should().BeTrue();
        mark.Reason.Should().Be(BackendUnavailableReason.Ejected, "one store in one process has one health, whoever composed the pipeline");
    }
}
