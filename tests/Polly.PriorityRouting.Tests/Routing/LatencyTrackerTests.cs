namespace Polly.PriorityRouting.Tests.Routing;

public class LatencyTrackerTests
{
    [Theory]
    [InlineData(1, 100.0, 100.0, 1000)]
    [InlineData(1, 125.0, 100.0, 1000)]
    [InlineData(1, 200.0, 100.0, 390)]
    [InlineData(1, 300.0, 100.0, 173)]
    [InlineData(1, 10_000.0, 100.0, 50)]
    [InlineData(3, 200.0, 100.0, 1171)]
    [InlineData(1000, 100_000.0, 1.0, 50_000)]
    [InlineData(1, double.NaN, 100.0, 1000)]
    [InlineData(1, 100.0, double.PositiveInfinity, 1000)]
    public void Scales_a_weight_by_the_squared_speed_ratio_to_the_fastest_within_a_quarter_as_fast_never_below_a_twentieth(int weight, double average, double fastest, int expected)
        => LatencyTracker.ScaleWeight(weight, average, fastest).Should().Be(expected);

    [Fact]
    public void The_first_sample_is_discarded_the_second_sets_the_average_and_later_ones_move_it_by_alpha()
    {
        var tracker = new LatencyTracker(2);
        tracker.GetAverage(0).Should().Be(double.NaN);

        tracker.Record(0, TimeSpan.FromMilliseconds(900));
        tracker.GetAverage(0).Should().Be(double.NaN, "the first sample pays the connection's set-up");
        tracker.Record(0, TimeSpan.FromMilliseconds(100));
        tracker.GetAverage(0).Should().Be(100);
        tracker.Record(0, TimeSpan.FromMilliseconds(200));
        tracker.GetAverage(0).Should().BeApproximately(130, 1e-9, "0.3 of the way to 200");
        tracker.GetAverage(1).Should().Be(double.NaN);
    }

    [Fact]
    public void One_outlier_either_way_leaves_the_average_and_two_in_a_row_move_it()
    {
        var tracker = new LatencyTracker(1);
        foreach (var sample in new[] { 10, 10, 10, 10 })
        {
            tracker.Record(0, TimeSpan.FromMilliseconds(sample));
        }

        tracker.Record(0, TimeSpan.FromMilliseconds(970));
        tracker.GetAverage(0).Should().Be(10, "the median of 10, 10 and 970 is 10");
        tracker.Record(0, TimeSpan.FromMilliseconds(10));
        tracker.Record(0, TimeSpan.FromMilliseconds(1));
        tracker.GetAverage(0).Should().Be(10, "nor does a single fast one");

        tracker.Record(0, TimeSpan.FromMilliseconds(400));
        tracker.Record(0, TimeSpan.FromMilliseconds(400));
        tracker.GetAverage(0).Should().BeApproximately(10 + (0.3 * 390), 1e-9, "two slow answers in a row are a trend");
    }
}
