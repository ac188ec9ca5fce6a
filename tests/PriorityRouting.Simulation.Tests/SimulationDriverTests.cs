namespace PriorityRouting.Simulation.Tests;

public class SimulationDriverTests
{
    // Small enough to run in a few seconds, large enough to cover two refills of every bucket at 2x overload.
    private static readonly SimulationSettings Settings = new()
    {
        LoadFactors = [2.0],
        ReplicaCounts = [1, 8],
        Measured = TimeSpan.FromSeconds(20),
    };

    [Fact]
    public async Task Two_runs_with_the_same_settings_give_the_same_numbers()
    {
        var first = await SimulationDriver.RunAllAsync(Settings);
        var second = await SimulationDriver.RunAllAsync(Settings);

        second.Should().Equal(first);
    }

    [Fact]
    public async Task Ours_meets_its_targets_at_twice_the_capacity()
    {
        var results = await SimulationDriver.RunAllAsync(Settings);

        SimulationReport.CheckTargets(results).Should().HaveCount(3).And.OnlyContain(line => line.StartsWith("PASS", StringComparison.Ordinal));
    }
}
