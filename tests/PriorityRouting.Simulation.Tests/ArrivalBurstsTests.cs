namespace PriorityRouting.Simulation.Tests;

/// <summary>
/// <see cref="ArrivalBursts.Multipliers"/>: the load a row names is the load its measured window offers, aligned or not
/// with the segments, up to the run's end (<c>[30, 70)</c> of a 70-second run).
/// </summary>
public class ArrivalBurstsTests
{
    private static readonly TimeSpan Duration = TimeSpan.FromSeconds(70);

    [Theory]
    [InlineData(10, 40, 1)]
    [InlineData(10, 40, 42)]
    [InlineData(11, 40, 7)]
    [InlineData(0, 40, 3)]
    [InlineData(9.5, 39, 5)]
    [InlineData(30, 40, 1)]
    public void The_segments_starting_inside_the_measured_window_average_exactly_one_and_so_do_the_others(double fromSeconds, double measuredSeconds, int seed)
    {
        var bursts = ArrivalBursts.Default;
        var from = TimeSpan.FromSeconds(fromSeconds);
        var end = from + TimeSpan.FromSeconds(measuredSeconds);

        var multipliers = bursts.Multipliers(Duration, from, end - from, seed);

        // Segment i starts at i × 2 s; it belongs to the window when that start lies in [from, end).
        multipliers.Should().HaveCount(36, "ceil(70 s / 2 s) + 1 segments");
        var inside = multipliers.Where((_, i) => Starts(i) >= from && Starts(i) < end).ToArray();
        var outside = multipliers.Where((_, i) => Starts(i) < from || Starts(i) >= end).ToArray();
        inside.Average().Should().BeApproximately(1.0, 1e-12);
        if (outside.Length > 0)
        {
            outside.Average().Should().BeApproximately(1.0, 1e-12);
        }

        // Still bursts and lulls: each group is its drawn multipliers scaled, 3 : 0.5 between a burst and a lull.
        foreach (var group in new[] { inside, outside }.Where(g => g.Distinct().Count() > 1))
        {
            (group.Max() / group.Min()).Should().BeApproximately(3.0 / 0.5, 1e-9);
        }

        inside.Distinct().Should().HaveCount(2, "each 20-segment window here holds both bursts and lulls");

        TimeSpan Starts(int segment) => segment * bursts.Segment;
    }
}
