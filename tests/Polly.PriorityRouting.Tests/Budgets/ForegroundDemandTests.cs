namespace Polly.PriorityRouting.Tests.Budgets;

/// <summary>The foreground's expected demand on one budget (<see cref="ForegroundDemand"/>), the rule the Redis script keeps too.</summary>
public class ForegroundDemandTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 6, 12, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(10);

    // An unknown limit: nothing bounds a spend.
    private const long Unbounded = -1;

    [Fact]
    public void The_demand_expected_until_the_reset_is_the_most_spent_in_one_second_for_every_second_left_begun()
    {
        var demand = default(ForegroundDemand);
        demand.Spend(1000, Now, Unbounded);
        demand.Spend(500, Now.AddMilliseconds(999), Unbounded);
        demand.Spend(200, Now.AddSeconds(1), Unbounded);
        demand.Peak.Should().Be(1500, "1,500 within one second; the next second's 200 is less");

        demand.Expected(100_000, TimeSpan.FromSeconds(3)).Should().Be(4500);
        demand.Expected(100_000, TimeSpan.FromSeconds(2.5)).Should().Be(4500, "a second begun counts whole");
        demand.Expected(100_000, TimeSpan.Zero).Should().Be(0, "nothing is spent in this window after its reset");
        demand.Expected(4000, TimeSpan.FromSeconds(3)).Should().Be(4000, "never more than the limit");
        default(ForegroundDemand).Expected(100_000, Window).Should().Be(0, "no foreground, nothing expected");
    }

    [Fact]
    public void A_burst_counts_at_its_rate_however_little_the_window_spent_in_all()
    {
        var demand = default(ForegroundDemand);
        for (var second = 0; second < 10; second++)
        {
            demand.Spend(100, Now.AddSeconds(second), Unbounded);
        }

        demand.Spend(2000, Now.AddSeconds(9.5), Unbounded);
        demand.EndWindows(1);

        demand.Expected(100_000, Window).Should().Be(21_000, "the window spent 3,000, but 2,100 within one second: a burst can come at any moment of the next");
    }

    [Fact]
    public void A_second_counts_no_more_than_the_limit_of_its_budget()
    {
        var demand = default(ForegroundDemand);
        demand.Spend(1_000_000, Now, 10_000);
        demand.Peak.Should().Be(10_000, "a backend never spends more than its limit in one window");
        demand.EndWindows(2);
        demand.RecentPeak.Should().Be(5000, "so it halves away like a second that spent the whole budget");

        demand.Spend(1_000_000, Now.AddSeconds(20), Unbounded);
        demand.Peak.Should().Be(1_000_000, "an unknown limit bounds nothing");
    }

    [Fact]
    public void A_quiet_window_halves_the_peak_and_a_larger_one_replaces_it()
    {
        var demand = default(ForegroundDemand);
        demand.Spend(8000, Now, Unbounded);
        demand.EndWindows(1);
        demand.RecentPeak.Should().Be(8000);

        demand.EndWindows(1);
        demand.RecentPeak.Should().Be(4000);
        demand.EndWindows(3);
        demand.RecentPeak.Should().Be(500, "4,000 halved once for the window that ended, twice for the two after it");
        demand.Spend(700, Now.AddSeconds(50), Unbounded);
        demand.Expected(100_000, TimeSpan.FromSeconds(1)).Should().Be(700, "the current window's peak counts at once");
        demand.EndWindows(1);
        demand.RecentPeak.Should().Be(700, "a window whose peak is above the halved recent one replaces it");
        demand.EndWindows(long.MaxValue);
        demand.RecentPeak.Should().Be(0, "a long quiet spell forgets it: a nightly batch gets the budget");
    }

    [Fact]
    public void A_slice_ends_with_its_window()
    {
        var demand = default(ForegroundDemand);
        demand.Spend(600, Now, Unbounded);
        demand.EndWindows(1);
        demand.Spend(300, Now.AddMilliseconds(500), Unbounded);

        demand.Peak.Should().Be(300, "the new window's first spend starts a slice of its own");
        demand.SliceSpent.Should().Be(300);
    }

    [Fact]
    public void A_followed_window_ends_when_its_moment_passes_and_an_unknown_window_never_ends()
    {
        var demand = default(ForegroundDemand);
        demand.Follow(Now, default, Window);
        demand.Spend(1000, Now, Unbounded);
        demand.Follow(Now.AddHours(1), default, Window);
        demand.RecentPeak.Should().Be(0, "no window is known: nothing ends");

        demand.Follow(Now, Now.AddSeconds(10), Window);
        demand.Follow(Now.AddSeconds(9), Now.AddSeconds(10), Window);
        demand.RecentPeak.Should().Be(0);
        demand.Follow(Now.AddSeconds(10), Now.AddSeconds(20), Window);
        demand.RecentPeak.Should().Be(1000);
        demand.Peak.Should().Be(0);

        demand.Follow(Now.AddSeconds(45), Now.AddSeconds(50), Window);
        demand.RecentPeak.Should().Be(125, "the windows ending at 20, 30 and 40 s passed quiet: 1,000 halved three times");
    }

    [Fact]
    public void The_demand_a_promise_of_a_later_refill_leaves_is_the_last_second_at_the_peak_that_ending_the_windows_up_to_it_would_leave()
    {
        var demand = default(ForegroundDemand);
        demand.Follow(Now, Now.AddSeconds(10), Window);
        demand.Spend(200, Now, Unbounded);
        demand.Follow(Now.AddSeconds(10), Now.AddSeconds(20), Window);
        demand.Spend(700, Now.AddSeconds(10), Unbounded);

        demand.ExpectedAt(Now.AddSeconds(15), Window, 100_000).Should().Be(3500, "within the current window: as admission then, 5 s at 700 until its end at 20 s");
        demand.ExpectedAt(Now.AddSeconds(20), Window, 100_000).Should().Be(700, "the refill that ends this window: the last second of the next at its peak");
        demand.ExpectedAt(Now.AddSeconds(30), Window, 100_000).Should().Be(350, "one refill later, halved");
        demand.ExpectedAt(Now.AddSeconds(20), Window, 500).Should().Be(500, "never more than the limit");
        demand.RecentPeak.Should().Be(200, "a read: nothing ends");
        demand.Peak.Should().Be(700);
        default(ForegroundDemand).ExpectedAt(Now.AddHours(1), Window, 10_000).Should().Be(0, "no foreground: nothing");
    }
}
