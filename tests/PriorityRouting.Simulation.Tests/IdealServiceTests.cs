namespace PriorityRouting.Simulation.Tests;

/// <summary>
/// <see cref="IdealService"/>: the served share of a router that knows every budget and whose callers wait as long as
/// it takes, on a row's own arrivals — the reference for what the arrivals leave unused, spending the reserved capacity
/// first (a priority router) or whatever is lost soonest (any router).
/// </summary>
public class IdealServiceTests
{
    // Steady arrivals of equal requests on three windowed backends (50 + 25 + 25 requests a second, 10-second refills).
    private static readonly SimulationSettings Settings = new() { Measured = TimeSpan.FromSeconds(40) };

    private static readonly SimulationScenario Uniform = Settings.Scenarios.Single(s => s.Name == SimulationSettings.UniformScenario);

    private static readonly SimulationScenario InFlight = Settings.Scenarios.Single(s => s.Name == SimulationSettings.InFlightScenario) with
    {
        Measured = TimeSpan.FromSeconds(40),
    };

    [Fact]
    public void Under_capacity_it_serves_what_arrives_and_no_more()
    {
        // Half the capacity arrives, evenly: every request is served as it arrives (2,000 of 4,000 in 40 s).
        IdealService.ServedShare(Settings, Uniform, loadFactor: 0.5, replicaCount: 1, IdealOrder.PriorityFirst).Should().BeApproximately(0.5, 0.001);
        IdealService.ServedShare(Settings, Uniform, loadFactor: 0.5, replicaCount: 1, IdealOrder.SoonestLostFirst).Should().BeApproximately(0.5, 0.001);
    }

    [Fact]
    public void Over_capacity_it_serves_every_refill_of_the_window()
    {
        // Twice the capacity: the warm-up emptied every bucket, so the window holds its four refills of each and no more.
        IdealService.ServedShare(Settings, Uniform, loadFactor: 2, replicaCount: 1, IdealOrder.PriorityFirst).Should().Be(1);
        IdealService.ServedShare(Settings, Uniform, loadFactor: 2, replicaCount: 1, IdealOrder.SoonestLostFirst).Should().Be(1);
    }

    [Fact]
    public void Bursts_at_the_capacity_leave_what_refills_in_their_lulls_unused()
    {
        // The same mean, evenly or in bursts (3x the mean, else half): evenly, every refill is spent; in bursts, the lulls
        // leave refills nobody asks for, and the bursts' backlog does not fill them all.
        var bursty = Uniform with { Bursts = ArrivalBursts.Default };

        IdealService.ServedShare(Settings, Uniform, loadFactor: 1, replicaCount: 1, IdealOrder.SoonestLostFirst).Should().Be(1);
        IdealService.ServedShare(Settings, bursty, loadFactor: 1, replicaCount: 1, IdealOrder.SoonestLostFirst).Should().BeLessThan(0.99).And.BeGreaterThan(0.8);
    }

    [Fact]
    public void Spending_the_reserved_capacity_first_loses_in_a_lull_what_the_pay_as_you_go_backends_refill()
    {
        // In flight, bursty, at 1x: a lull's demand fits the reserved backend, whose refill comes back anyway; spent first,
        // it leaves the pay-as-you-go backends' refills of the lull unasked for, which spending what is lost soonest uses.
        var priorityFirst = IdealService.ServedShare(Settings, InFlight, loadFactor: 1, replicaCount: 8, IdealOrder.PriorityFirst);
        var soonestLostFirst = IdealService.ServedShare(Settings, InFlight, loadFactor: 1, replicaCount: 8, IdealOrder.SoonestLostFirst);

        priorityFirst.Should().BeLessThan(soonestLostFirst - 0.01);
    }

    [Fact]
    public async Task Every_row_carries_the_ideal_share_of_its_own_arrivals()
    {
        var settings = Settings with { LoadFactors = [1.0], ReplicaCounts = [1, 8], Scenarios = [InFlight], RouterFilter = "ours" };

        var results = await SimulationDriver.RunAllAsync(settings);

        results.Should().HaveCountGreaterThan(2);
        foreach (var row in results)
        {
            row.IdealServedShare.Should().Be(IdealService.ServedShare(settings, InFlight, 1.0, row.Replicas, IdealOrder.PriorityFirst), $"{row.Router} at {row.Replicas}");
            row.IdealAnyOrderServedShare.Should().Be(IdealService.ServedShare(settings, InFlight, 1.0, row.Replicas, IdealOrder.SoonestLostFirst), $"{row.Router} at {row.Replicas}");
        }

        // The replicas draw their own arrivals: another draw, another ideal.
        results.Select(r => r.IdealServedShare).Distinct().Should().HaveCount(2);
        results.Select(r => r.IdealAnyOrderServedShare).Distinct().Should().HaveCount(2);
    }
}
