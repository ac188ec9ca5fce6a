using Microsoft.Extensions.DependencyInjection;

namespace Polly.PriorityRouting.Tests.Health;

public class PriorityRoutingSnapshotProviderTests
{
    [Fact]
    public void A_client_name_without_a_priority_routing_handler_is_named_in_the_error()
    {
        // Defect: PriorityRoutingSnapshotProvider.GetSnapshot (Health/PriorityRoutingSnapshotProvider.cs:40-41) reads the
        // options of any name; for a typo they are the defaults, and validation answers about their empty backend list.
        var services = new ServiceCollection();
        services.AddHttpClient("aoai").AddPriorityRoutingHandler(o =>
            o.Routing.Backends.Add(new PriorityBackend { Name = "ptu", BaseAddress = new Uri("https://ptu/") }));
        using var provider = services.BuildServiceProvider();

        var act = () => provider.GetRequiredService<PriorityRoutingSnapshotProvider>().GetSnapshot("aoia");

        act.Should().Throw<ArgumentException>().WithMessage("*'aoia'*");
    }
}
