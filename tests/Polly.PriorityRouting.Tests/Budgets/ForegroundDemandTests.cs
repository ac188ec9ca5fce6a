namespace Polly.PriorityRouting.Tests.Budgets;

/// <summary>The foreground's expected demand on one budget (<see cref="ForegroundDemand"/>), the rule the Redis script keeps too.</summary>
public class ForegroundDemandTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 6, 12, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(10);

    [Fact]
    public void The_demand_expected_is_the_last_windows_spend_less_what_the_current_one_spent_so_far()
    {
        var demand = default(ForegroundDemand);
        demand.Spend(6000, 10_000);
        demand.Expected(10_000).Should().Be(0, "nothing was spent in an earlier window");

        demand.EndWindows(1);
        demand.Expected(10_000).Should().Be(6000);
        demand.Spend(2500, 10_000);
        demand.Expected(10_000).Should().Be(3500);
        demand.Expected(3000).Should().Be(3000, "never more than the limit");
        demand.Spend(5000, 10_000);
        demand.Expected(10_000).Should().Be(0, "a window that spent more than expected expects nothing more");
    }

    [Fact]
    public void A_window_counts_no_more_than_the_limit_of_its_budget()
    {
        var demand = default(ForegroundDemand);
        demand.Spend(1_000_000, 10_000);
        demand.Spent.Should().Be(10_000, "a backend never spends more than its limit in one window");
        demand.EndWindows(2);
        demand.Recent.Should().Be(5000, "so it halves away like a window that spent the whole budget");

        demand.Spend(1_000_000, -1);
        demand.Spent.Should().Be(1_000_000, "an unknown limit bounds nothing");
    }

    [Fact]
    public void A_quiet_window_halves_what_is_expected_and_a_larger_one_replaces_it()
    {
        var demand = default(ForegroundDemand);
        demand.Spend(8000, 10_000);
        demand.EndWindows(1);

        demand.EndWindows(1);
        demand.Recent.Should().Be(4000);
        demand.EndWindows(3);
        demand.Recent.Should().Be(500, "4,000 halved once for the window that ended, twice for the two after it");
        demand.Spend(700, 10_000);
        demand.EndWindows(1);
        demand.Recent.Should().Be(700, "a window that spent more than the halved recent one replaces it");
        demand.EndWindows(long.MaxValue);
        demand.Recent.Should().Be(0, "a long quiet spell forgets it");
    }

    [Fact]
    public void A_followed_window_ends_when_its_moment_passes_and_an_unknown_window_never_ends()
    {
        var demand = default(ForegroundDemand);
        demand.Follow(Now, default, Window);
        demand.Spend(1000, 10_000);
        demand.Follow(Now.AddHours(1), default, Window);
        demand.Recent.Should().Be(0, "no window is known: nothing ends");

        demand.Follow(Now, Now.AddSeconds(10), Window);
        demand.Follow(Now.AddSeconds(9), Now.AddSeconds(10), Window);
        demand.Recent.Should().Be(0);
        demand.Follow(Now.AddSeconds(10), Now.AddSeconds(20), Window);
        demand.Recent.Should().Be(1000);
        demand.Spent.Should().Be(0);

        demand.Follow(Now.AddSeconds(45), Now.AddSeconds(50), Window);
        demand.Recent.Should().Be(125, "the windows ending at 20, 30 and 40 s passed quiet: 1,000 halved three times");
    }

    [Fact]
    public void The_demand_expected_at_a_later_refill_is_what_ending_the_windows_up_to_it_would_leave()
    {
        var demand = default(ForegroundDemand);
        demand.Follow(Now, Now.AddSeconds(10), Window);
        demand.Spend(2000, 10_000);
        demand.Follow(Now.AddSeconds(10), Now.AddSeconds(20), Window);
        demand.Spend(7000, 10_000);

        demand.ExpectedAt(Now.AddSeconds(15), Window, 10_000).Should().Be(0, "within the current window: as now");
        demand.ExpectedAt(Now.AddSeconds(20), Window, 10_000).Should().Be(7000, "the refill that ends this window: its spend");
        demand.ExpectedAt(Now.AddSeconds(30), Window, 10_000).Should().Be(3500, "one refill later, halved");
        demand.ExpectedAt(Now.AddSeconds(20), Window, 5000).Should().Be(5000, "never more than the limit");
        demand.Recent.Should().Be(2000, "a read: nothing ends");
        demand.Spent.Should().Be(7000);
        default(ForegroundDemand).ExpectedAt(Now.AddHours(1), Window, 10_000).Should().Be(0, "no window followed: as now");
    }
}
