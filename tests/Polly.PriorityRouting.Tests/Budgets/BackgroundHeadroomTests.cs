using System.Net;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Budgets;

/// <summary>The request classes of the budget view (<see cref="PriorityRoutingHints.Background"/>): admission, promises and waiters' rooms.</summary>
public class BackgroundHeadroomTests
{
    private const double Headroom = 0.2;
    private static readonly DateTimeOffset Now = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan MaxCooldown = TimeSpan.FromMinutes(5);
    private static readonly BackendStateKey Key = RoutingHarness.Key("a");

    [Fact]
    public void A_background_request_is_admitted_only_while_the_headroom_of_the_tokens_stays_free()
    {
        var budgets = Observed(("x-ratelimit-remaining-tokens", "5000"), ("x-ratelimit-limit-tokens", "10000"), ("x-ratelimit-reset-tokens", "10s"));

        budgets.CanAdmit(Key, 3000, Now, headroom: Headroom).Should().BeTrue("2,000 of 10,000 stay free after it");
        budgets.CanAdmit(Key, 3001, Now, headroom: Headroom).Should().BeFalse();
        budgets.TimeUntilAdmitted(Key, 3001, Now.AddSeconds(4), headroom: Headroom).Should().Be(TimeSpan.FromSeconds(6), "its own refill, never 0");
        budgets.CanAdmit(Key, 5000, Now).Should().BeTrue("a foreground request ignores the headroom");

        budgets.TryTake(Key, 3000, Now, headroom: Headroom).Should().BeTrue();
        budgets.TryTake(Key, 0, Now, headroom: Headroom).Should().BeTrue("at cost 0 exactly the headroom is left");
        budgets.TryTake(Key, 1, Now, headroom: Headroom).Should().BeFalse("the headroom is the foreground's");
        budgets.TryTake(Key, 2000, Now).Should().BeTrue();
        budgets.CanAdmit(Key, 0, Now, headroom: Headroom).Should().BeFalse("a background request of unknown cost is held back inside the headroom");
        budgets.CanAdmit(Key, 0, Now).Should().BeTrue("a foreground one of unknown cost never is");
        budgets.CanAdmit(Key, 3000, Now.AddSeconds(10), headroom: Headroom).Should().BeTrue("the refill brings background work back");
    }

    [Fact]
    public void A_background_request_is_admitted_only_while_the_headroom_of_the_requests_stays_free()
    {
        var budgets = Observed(("x-ratelimit-remaining-requests", "4"), ("x-ratelimit-limit-requests", "10"), ("x-ratelimit-reset-requests", "10s"));

        budgets.TryTake(Key, 0, Now, headroom: Headroom).Should().BeTrue("3 are left, 2 kept");
        budgets.TryTake(Key, 0, Now, headroom: Headroom).Should().BeTrue();
        budgets.TryTake(Key, 0, Now, headroom: Headroom).Should().BeFalse("2 of 10 requests are the foreground's");
        budgets.TryTake(Key, 0, Now).Should().BeTrue();
        budgets.TryTake(Key, 0, Now).Should().BeTrue();
        budgets.TryTake(Key, 0, Now).Should().BeFalse("the foreground spent the budget");
    }

    [Fact]
    public void A_budget_with_no_known_limit_or_no_budget_at_all_admits_background_work()
    {
        var unknown = new BackendBudgets();
        unknown.CanAdmit(Key, 1_000_000, Now, headroom: Headroom).Should().BeTrue("nothing is known");

        var remainingOnly = Observed(("x-ratelimit-remaining-tokens", "1000"), ("x-ratelimit-reset-tokens", "10s"));
        remainingOnly.CanAdmit(Key, 1000, Now, headroom: Headroom).Should().BeTrue("no limit: no share of it can be kept");
        remainingOnly.CanAdmit(Key, 1001, Now, headroom: Headroom).Should().BeFalse("the budget itself still binds");
    }

    [Fact]
    public void A_declared_quota_gives_the_headroom_its_limit()
    {
        var budgets = new BackendBudgets();
        var quota = DeclaredQuota.Create(tokensPerMinute: 10_000, requestsPerMinute: null);

        budgets.TryTake(Key, 8000, Now, quota: quota, headroom: Headroom).Should().BeTrue();
        budgets.TryTake(Key, 1, Now, quota: quota, headroom: Headroom).Should().BeFalse();
        budgets.TryTake(Key, 2000, Now, quota: quota).Should().BeTrue();
    }

    [Fact]
    public void A_background_request_too_large_to_leave_the_headroom_is_admitted_on_a_full_budget_only()
    {
        var budgets = new BackendBudgets();
        var quota = DeclaredQuota.Create(tokensPerMinute: 10_000, requestsPerMinute: null);

        budgets.TryTake(Key, 9000, Now, quota: quota, headroom: Headroom).Should().BeTrue("it could never leave 2,000: a full budget takes it");
        budgets.TryTake(Key, 9000, Now.AddSeconds(30), quota: quota, headroom: Headroom).Should().BeFalse();
        budgets.TimeUntilAdmitted(Key, 9000, Now.AddSeconds(30), headroom: Headroom).Should().Be(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public void A_foreground_caller_is_promised_a_refill_as_if_no_background_caller_were_and_background_leaves_the_headroom()
    {
        var budgets = Observed(("x-ratelimit-remaining-tokens", "0"), ("x-ratelimit-limit-tokens", "10000"), ("x-ratelimit-reset-tokens", "10s"));
        var reset = Now.AddSeconds(10);

        budgets.Promise(Key, 4000, reset, out _, Headroom).Should().Be(reset);
        budgets.Promise(Key, 4000, reset, out _, Headroom).Should().Be(reset, "8,000 leave the 2,000 of headroom");
        budgets.Promise(Key, 1, reset, out _, Headroom).Should().Be(reset.AddSeconds(10), "the headroom of the refill stays free");

        budgets.Promise(Key, 10_000, reset).Should().Be(reset, "foreground comes before every background caller");
        budgets.Promise(Key, 1, reset).Should().Be(reset.AddSeconds(10));
        budgets.Promise(Key, 7998, reset, out _, Headroom).Should().Be(reset.AddSeconds(10), "after every promise, the foreground's too: 1 + 1 + 7,998 leave the 2,000");
        budgets.Promise(Key, 1, reset, out var reserved, Headroom).Should().Be(reset, "both windows of the horizon are full: the soonest moment, nothing reserved");
        reserved.Should().BeFalse();
    }

    [Fact]
    public void A_background_caller_is_promised_the_next_window_only_if_it_fits_there_else_the_soonest_moment_reserving_nothing()
    {
        var budgets = Observed(("x-ratelimit-remaining-tokens", "10000"), ("x-ratelimit-limit-tokens", "10000"), ("x-ratelimit-reset-tokens", "10s"));
        budgets.TryTake(Key, 9000, Now).Should().BeTrue("the foreground spends 9,000 in the first window");
        var reset = Now.AddSeconds(10);

        budgets.Promise(Key, 4000, reset, out var reserved, Headroom).Should().Be(reset, "the refill keeps 9,000 for the foreground and the next one 4,500: neither leaves 4,000 and the 2,000 of headroom");
        reserved.Should().BeFalse();

        budgets.Promise(Key, 3500, reset, out reserved, Headroom).Should().Be(reset.AddSeconds(10), "3,500 fit the next window beside 4,500 expected and the headroom");
        reserved.Should().BeTrue();
        budgets.Promise(Key, 1, reset, out reserved, Headroom).Should().Be(reset, "that window is now full too");
        reserved.Should().BeFalse();
        budgets.CanAdmit(Key, 4000, reset.AddSeconds(10), headroom: Headroom).Should().BeFalse("a promise of 4,000 in the next window would have been broken there");
    }

    [Fact]
    public void A_foreground_caller_told_to_come_back_at_the_refill_finds_its_room_there_although_background_requests_arrived_first()
    {
        var budgets = Observed(("x-ratelimit-remaining-tokens", "0"), ("x-ratelimit-limit-tokens", "10000"), ("x-ratelimit-reset-tokens", "10s"));
        var reset = Now.AddSeconds(10);
        budgets.Promise(Key, 6000, reset).Should().Be(reset);

        budgets.TryTake(Key, 2001, reset, headroom: Headroom).Should().BeFalse("6,000 are promised to a foreground caller, and 2,000 are the headroom");
        budgets.TryTake(Key, 2000, reset, headroom: Headroom).Should().BeTrue("background takes what is left");
        budgets.TryTake(Key, 6000, reset).Should().BeTrue("the foreground caller finds the room it was promised");
        budgets.CanAdmit(Key, 1, reset, headroom: Headroom).Should().BeFalse("what is left is the headroom");
    }

    [Fact]
    public void The_room_promised_to_foreground_callers_is_given_up_as_they_come_back_and_when_its_window_passes()
    {
        var budgets = Observed(("x-ratelimit-remaining-tokens", "0"), ("x-ratelimit-limit-tokens", "10000"), ("x-ratelimit-reset-tokens", "10s"));
        var reset = Now.AddSeconds(10);
        budgets.Promise(Key, 3000, reset).Should().Be(reset);
        budgets.Promise(Key, 3000, reset).Should().Be(reset);

        budgets.TryTake(Key, 3000, reset).Should().BeTrue("one of the two callers came back");
        budgets.CanAdmit(Key, 2000, reset, headroom: Headroom).Should().BeTrue("7,000 left: 3,000 still promised, 2,000 the headroom");
        budgets.CanAdmit(Key, 2001, reset, headroom: Headroom).Should().BeFalse();
        budgets.CanAdmit(Key, 5000, reset.AddSeconds(10), headroom: Headroom).Should().BeTrue("the promise's window passed: a full refill leaves the headroom and the 3,000 the foreground spent in the last window");
        budgets.CanAdmit(Key, 5001, reset.AddSeconds(10), headroom: Headroom).Should().BeFalse();
    }

    [Fact]
    public void A_background_waiters_room_holds_back_background_work_only_and_a_foreground_waiters_holds_back_both()
    {
        var budgets = Observed(("x-ratelimit-remaining-tokens", "0"), ("x-ratelimit-limit-tokens", "10000"), ("x-ratelimit-reset-tokens", "10s"));
        var refill = Now.AddSeconds(10);

        var background = budgets.Hold(new BudgetReservation(Key, 6000, refill, "a", Headroom))!;
        budgets.CanAdmit(Key, 10_000, refill).Should().BeTrue("a foreground request may take a background waiter's room");
        budgets.CanAdmit(Key, 2000, refill, headroom: Headroom).Should().BeTrue("2,000 beside the waiter's 6,000 leave the headroom");
        budgets.CanAdmit(Key, 2001, refill, headroom: Headroom).Should().BeFalse();
        budgets.CanAdmit(Key, 6000, refill, background, headroom: Headroom).Should().BeTrue("the waiter spends its own room");

        var foreground = budgets.Hold(new BudgetReservation(Key, 5000, refill, "a"))!;
        budgets.CanAdmit(Key, 5000, refill).Should().BeTrue();
        budgets.CanAdmit(Key, 5001, refill).Should().BeFalse("a foreground waiter's room is held from everyone");
        budgets.CanAdmit(Key, 6000, refill, background, headroom: Headroom).Should().BeFalse("foreground first: only 3,000 are left for background beside the headroom");

        foreground.Release();
        budgets.TryTake(Key, 6000, refill, background, headroom: Headroom).Should().BeTrue();
        background.Release();
        budgets.CanAdmit(Key, 4000, refill).Should().BeTrue();
        budgets.CanAdmit(Key, 4001, refill).Should().BeFalse("the background waiter spent its room");
    }

    [Fact]
    public void A_background_request_leaves_free_what_the_foreground_spent_in_the_last_window_beyond_what_it_spent_so_far()
    {
        var budgets = Observed(("x-ratelimit-remaining-tokens", "10000"), ("x-ratelimit-limit-tokens", "10000"), ("x-ratelimit-reset-tokens", "10s"));
        budgets.TryTake(Key, 6000, Now).Should().BeTrue("the foreground spends 6,000 in the first window");
        var next = Now.AddSeconds(10);

        budgets.CanAdmit(Key, 2000, next, headroom: Headroom).Should().BeTrue("a full refill less 2,000 of headroom less 6,000 the foreground is expected to spend");
        budgets.CanAdmit(Key, 2001, next, headroom: Headroom).Should().BeFalse("early in the window, the foreground's burst may still come");
        budgets.TimeUntilAdmitted(Key, 2001, next.AddSeconds(4), headroom: Headroom).Should().Be(TimeSpan.FromSeconds(6), "until the window ends");
        budgets.CanAdmit(Key, 10_000, next).Should().BeTrue("a foreground request is never held back by its own expected demand");

        budgets.TryTake(Key, 7000, next).Should().BeTrue("the foreground spends more than expected");
        budgets.CanAdmit(Key, 1000, next, headroom: Headroom).Should().BeTrue("nothing more is expected: what is left beyond the headroom");
        budgets.CanAdmit(Key, 1001, next, headroom: Headroom).Should().BeFalse();
    }

    [Fact]
    public void A_foreground_request_larger_than_the_whole_budget_counts_as_its_limit_in_the_foreground_demand()
    {
        // The rule the shared reservations keep too (RedisReservationTests and SharedReservationCounterTests, same name).
        var budgets = Observed(("x-ratelimit-remaining-tokens", "10000"), ("x-ratelimit-limit-tokens", "10000"), ("x-ratelimit-reset-tokens", "10s"));
        budgets.TryTake(Key, 1_000_000, Now).Should().BeTrue("only the backend can judge it");

        var twoWindowsLater = Now.AddSeconds(20);
        budgets.CanAdmit(Key, 3001, twoWindowsLater, headroom: Headroom).Should().BeFalse();
        budgets.CanAdmit(Key, 3000, twoWindowsLater, headroom: Headroom).Should().BeTrue("at most 10,000 spent two windows ago leave 5,000 expected, and 2,000 are the headroom");
    }

    [Fact]
    public void Background_only_work_gets_the_whole_budget_less_the_headroom_once_the_foreground_is_quiet()
    {
        var budgets = Observed(("x-ratelimit-remaining-tokens", "10000"), ("x-ratelimit-limit-tokens", "10000"), ("x-ratelimit-reset-tokens", "10s"));
        budgets.TryTake(Key, 8000, Now).Should().BeTrue("a foreground window of 8,000");

        budgets.CanAdmit(Key, 1, Now.AddSeconds(10), headroom: Headroom).Should().BeFalse("the next window keeps 8,000 for the foreground, and 2,000 of headroom");
        budgets.CanAdmit(Key, 4000, Now.AddSeconds(20), headroom: Headroom).Should().BeTrue("a quiet window halves what is expected: 4,000");
        budgets.CanAdmit(Key, 4001, Now.AddSeconds(20), headroom: Headroom).Should().BeFalse();
        budgets.CanAdmit(Key, 7000, Now.AddSeconds(40), headroom: Headroom).Should().BeTrue("two more quiet windows: 1,000");
        budgets.CanAdmit(Key, 7001, Now.AddSeconds(40), headroom: Headroom).Should().BeFalse();
        budgets.CanAdmit(Key, 8000, Now.AddSeconds(200), headroom: Headroom).Should().BeTrue("a nightly batch has the whole budget less the headroom");
    }

    [Fact]
    public void The_expected_foreground_demand_holds_the_request_budget_too()
    {
        var budgets = Observed(("x-ratelimit-remaining-requests", "10"), ("x-ratelimit-limit-requests", "10"), ("x-ratelimit-reset-requests", "10s"));
        for (var i = 0; i < 5; i++)
        {
            budgets.TryTake(Key, 0, Now).Should().BeTrue();
        }

        var next = Now.AddSeconds(10);
        budgets.TryTake(Key, 0, next, headroom: Headroom).Should().BeTrue("10 less 2 kept less 5 expected leave 3");
        budgets.TryTake(Key, 0, next, headroom: Headroom).Should().BeTrue();
        budgets.TryTake(Key, 0, next, headroom: Headroom).Should().BeTrue();
        budgets.TryTake(Key, 0, next, headroom: Headroom).Should().BeFalse("5 requests are the foreground's expected demand");
        budgets.TryTake(Key, 0, next).Should().BeTrue("the foreground takes them");
    }

    [Fact]
    public void Admitting_a_background_request_allocates_nothing()
    {
        var budgets = Observed(("x-ratelimit-remaining-tokens", "10000000"), ("x-ratelimit-limit-tokens", "10000000"), ("x-ratelimit-reset-tokens", "10s"));
        budgets.TryTake(Key, 1, Now, headroom: Headroom);

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1_000; i++)
        {
            budgets.CanAdmit(Key, 10, Now, headroom: Headroom);
            budgets.TryTake(Key, 10, Now, headroom: Headroom);
            budgets.TimeUntilAdmitted(Key, 10, Now, headroom: Headroom);
        }

        (GC.GetAllocatedBytesForCurrentThread() - before).Should().Be(0);
    }

    private static BackendBudgets Observed(params (string Name, string Value)[] headers)
    {
        var budgets = new BackendBudgets();
        using var response = new HttpResponseMessage(HttpStatusCode.OK);
        foreach (var (name, value) in headers)
        {
            response.Headers.TryAddWithoutValidation(name, value);
        }

        budgets.Observe(Key, response.Headers, Now, MaxCooldown);
        return budgets;
    }
}
