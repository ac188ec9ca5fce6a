namespace Polly.PriorityRouting.Tests.Routing.Planning;

public class HintsStageTests
{
    [Fact]
    public void A_background_request_carries_the_pipelines_headroom_and_a_foreground_one_none()
    {
        HintsStage.HeadroomOf(new PriorityRoutingHints { Background = true }, 0.3).Should().Be(0.3);
        HintsStage.HeadroomOf(new PriorityRoutingHints { Background = false, NoFailover = true }, 0.3).Should().Be(0);
        HintsStage.HeadroomOf(null, 0.3).Should().Be(0);
    }

    [Fact]
    public void A_background_hint_narrows_no_backend()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/");
        var disallowed = new BackendSet(1);
        var stage = new HintsStage([new RoutedBackend(Support.RoutingHarness.Backend("a", 1), 0)]);

        var step = stage.Apply(new RequestFacts(request, null, default, new PriorityRoutingHints { Background = true }), ref disallowed);

        step.IsNarrowed.Should().BeFalse("the class is carried on the route, not by closing backends");
        disallowed.Contains(0).Should().BeFalse();
    }
}
