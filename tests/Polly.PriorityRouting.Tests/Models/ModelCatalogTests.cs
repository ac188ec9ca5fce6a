using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Models;

public class ModelCatalogTests
{
    [Fact]
    public void A_pool_without_maps_has_no_catalog_so_requests_keep_todays_path()
        => ModelCatalog.Create(BackendPool.Route([RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2)])).Should().BeNull();

    [Fact]
    public void Each_name_routes_over_the_backends_that_serve_it_with_their_own_names()
    {
        var backends = BackendPool.Route([
            With(RoutingHarness.Backend("c", 2), ("o3", "o3-2025-04-16")),
            With(RoutingHarness.Backend("a", 1), ("gpt-4o", "gpt-4o-ptu")),
            With(RoutingHarness.Backend("b", 2), ("gpt-4o", "gpt-4o"), ("o3", "o3")),
            RoutingHarness.Backend("d", 3),
        ]);

        var catalog = ModelCatalog.Create(backends)!;

        catalog.Names.Should().Equal("gpt-4o", "o3");
        Describe(catalog.Resolve("gpt-4o")!).Should().Equal("a:gpt-4o-ptu", "b:gpt-4o", "d:-");
        Describe(catalog.Resolve("o3")!).Should().Equal("c:o3-2025-04-16", "b:o3", "d:-");
        Describe(catalog.Resolve("mistral")!).Should().Equal("d:-");
        catalog.Resolve("mistral").Should().BeSameAs(catalog.Resolve("another-name"), "names from requests share one precomputed route");

        var tried = new BackendSet(backends.Length);
        catalog.Resolve("o3")!.ExcludeOthers(ref tried);
        backends.Select(b => tried.Contains(b.Index)).Should().Equal(true, false, false, false);
    }

    [Fact]
    public void When_every_backend_has_a_map_other_names_have_no_route()
    {
        var catalog = ModelCatalog.Create(BackendPool.Route([With(RoutingHarness.Backend("a", 1), ("gpt-4o", "x"))]))!;

        catalog.Unmapped.Should().BeNull();
        catalog.Resolve("gpt-5").Should().BeNull();
        catalog.Resolve("GPT-4o").Should().BeNull("names match exactly");
    }

    private static PriorityBackend With(PriorityBackend backend, params (string Logical, string Own)[] models)
    {
        foreach (var (logical, own) in models)
        {
            backend.Models[logical] = own;
        }

        return backend;
    }

    private static IEnumerable<string> Describe(ModelRoute route)
        => route.Backends.Select(b => $"{b.Name}:{route.DeploymentOn(b)?.Name ?? "-"}");
}
