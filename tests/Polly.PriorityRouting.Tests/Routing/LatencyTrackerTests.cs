namespace Polly.PriorityRouting.Tests.Routing;

public class LatencyTrackerTests
{
    [Theory]
    [InlineData(1, 100.0, 100.0, 1000)]
    [InlineData(1, 200.0, 100.0, 250)]
    [InlineData(1, 300.0, 100.0, 111)]
    [InlineData(1, 10_000.0, 100.0, 50)]
    [InlineData(3, 200.0, 100.0, 750)]
    [InlineData(1000, 100_000.0, 1.0, 50_000)]
    [InlineData(1, double.NaN, 100.0, 1000)]
    [InlineData(1, 100.0, double.PositiveInfinity, 1000)]
    public void Scales_a_weight_by_the_squared_speed_ratio_to_the_fastest_never_below_a_twentieth(int weight, double average, double fastest, int expected)
        => LatencyTracker.ScaleWeight(weight, average, fastest).Should().Be(expected);

    [Fact]
    public void The_first_sample_sets_the_average_and_each_next_one_moves_it_half_way()
    {
        var tracker = new LatencyTracker(2);
        tracker.GetAverage(0).Should().Be(double.NaN);

        tracker.Record(0, TimeSpan.FromMilliseconds(300));
        tracker.GetAverage(0).Should().Be(300);
        tracker.Record(0, TimeSpan.FromMilliseconds(100));
        tracker.GetAverage(0).Should().Be(200);
        tracker.Record(0, TimeSpan.FromMilliseconds(100));
        tracker.GetAverage(0).Should().Be(150);
        tracker.GetAverage(1).Should().Be(double.NaN);
    }
}
