using Polly.PriorityRouting;

namespace PriorityRouting.Simulation.Tests;

public class LatencySimulationTests
{
    [Fact]
    public async Task Latency_aware_choice_keeps_the_slow_backend_to_about_a_twelfth_and_lowers_p50_and_p95()
    {
        var random = await LatencySimulation.RunAsync(BackendSelectionMode.WeightedRandom);
        var aware = await LatencySimulation.RunAsync(BackendSelectionMode.LatencyAware);

        (random.P50, random.P95).Should().Be((220.9, 686.1));
        (aware.P50, aware.P95).Should().Be((203.4, 560.7));
        random.SlowShare.Should().BeInRange(0.32, 0.35);
        aware.SlowShare.Should().BeInRange(0.07, 0.09, "(1.25 × 200/600)² = 0.17 of a fast backend's weight");
        aware.RecoveredShares[0].Should().BeGreaterThan(0.25, "a recovered backend wins its share back within 100 requests");
    }
}
