using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Routing.Planning;

public class DrainStageTests
{
    private static readonly RoutedBackend[] Backends =
    [
        new(RoutingHarness.Backend("a", 1), 0) { Drained = true },
        new(RoutingHarness.Backend("b", 1), 1),
    ];

    [Fact]
    public void A_drained_backend_takes_no_new_request()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/");
        var disallowed = new BackendSet(2);

        var step = new DrainStage(Backends).Apply(new RequestFacts(request, null, default, null), ref disallowed);

        step.IsNarrowed.Should().BeTrue("the exhausted answer must not count a drained backend");
        disallowed.Contains(0).Should().BeTrue();
        disallowed.Contains(1).Should().BeFalse();
    }

    [Fact]
    public void A_request_pinned_to_a_drained_backend_by_an_id_it_holds_still_goes_there()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/");
        var disallowed = BackendSet.AllExcept(2, 0);
        var pinned = new AffinityDecision(default, Backends[0], null);

        var step = new DrainStage(Backends).Apply(new RequestFacts(request, null, pinned, null), ref disallowed);

        step.IsNarrowed.Should().BeFalse();
        disallowed.Contains(0).Should().BeFalse("nothing else can serve the id");
    }
}
