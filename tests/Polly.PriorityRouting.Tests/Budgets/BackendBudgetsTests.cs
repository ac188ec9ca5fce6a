using System.Net;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Budgets;

public class BackendBudgetsTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan MaxCooldown = TimeSpan.FromMinutes(5);
    private static readonly BackendStateKey Key = RoutingHarness.Key("a");

    [Fact]
    public void An_unknown_budget_admits_everything()
    {
        var budgets = new BackendBudgets();

        budgets.CanAdmit(Key, 1_000_000, Now).Should().BeTrue();
        budgets.TimeUntilAdmitted(Key, 1_000_000, Now).Should().Be(TimeSpan.Zero);
        budgets.Promise(Key, 10, Now.AddSeconds(3)).Should().Be(Now.AddSeconds(3));
        budgets.Count.Should().Be(0);
    }

    [Fact]
    public void A_request_larger_than_the_remaining_tokens_waits_for_the_reset_then_fits()
    {
        var budgets = new BackendBudgets();
        budgets.Observe(Key, Headers(("x-ratelimit-remaining-tokens", "1000"), ("x-ratelimit-limit-tokens", "10000"), ("x-ratelimit-reset-tokens", "6s")), Now, MaxCooldown);

        budgets.CanAdmit(Key, 1000, Now).Should().BeTrue();
        budgets.CanAdmit(Key, 6000, Now).Should().BeFalse();
        budgets.TimeUntilAdmitted(Key, 6000, Now.AddSeconds(1)).Should().Be(TimeSpan.FromSeconds(5));
        budgets.CanAdmit(Key, 6000, Now.AddSeconds(6)).Should().BeTrue("the budget is back at its limit at the reset");
        budgets.CanAdmit(Key, 20_000, Now).Should().BeTrue("a request larger than the whole limit is left to the backend");
    }

    [Fact]
    public void Spending_takes_the_cost_off_until_the_next_answer_reports_the_budget()
    {
        var budgets = new BackendBudgets();
        budgets.Observe(Key, Headers(("x-ratelimit-remaining-tokens", "5000"), ("x-ratelimit-reset-tokens", "10")), Now, MaxCooldown);

        budgets.TryTake(Key, 3000, Now).Should().BeTrue();
        budgets.CanAdmit(Key, 3000, Now).Should().BeFalse();
        budgets.CanAdmit(Key, 2000, Now).Should().BeTrue();

        budgets.Observe(Key, Headers(("x-ratelimit-remaining-tokens", "4000"), ("x-ratelimit-reset-tokens", "10")), Now, MaxCooldown);
        budgets.CanAdmit(Key, 3000, Now).Should().BeTrue();
    }

    [Fact]
    public void What_was_sent_while_an_answer_was_in_flight_still_counts_when_it_arrives()
    {
        var budgets = new BackendBudgets();
        budgets.Observe(Key, Headers(("x-ratelimit-remaining-tokens", "10000"), ("x-ratelimit-reset-tokens", "10s")), Now, MaxCooldown);
        budgets.TryTake(Key, 4000, Now.AddSeconds(1), out var first).Should().BeTrue("the first completion is sent");
        budgets.TryTake(Key, 4000, Now.AddSeconds(1), out _).Should().BeTrue("the second is sent just after, while the first runs");

        // The first one's answer: 6,000 left when the backend admitted it, before the second was sent.
        budgets.Observe(Key, Headers(("x-ratelimit-remaining-tokens", "6000"), ("x-ratelimit-reset-tokens", "9s")), Now.AddSeconds(3), MaxCooldown, sentAt: Now.AddSeconds(1), ticket: first);

        budgets.CanAdmit(Key, 3000, Now.AddSeconds(3)).Should().BeFalse("the second completion's 4,000 are not in that count");
        budgets.CanAdmit(Key, 2000, Now.AddSeconds(3)).Should().BeTrue();
    }

    [Fact]
    public void A_budget_refilled_continuously_is_full_at_its_reset_less_what_was_sent_since_the_report()
    {
        // OpenAI's reset is the time until the budget is full (10,000 tokens a second here): a spend between two answers
        // moves that moment later, which a budget refilled in windows never does.
        var budgets = new BackendBudgets();
        budgets.Observe(Key, Headers(("x-ratelimit-remaining-tokens", "50000"), ("x-ratelimit-limit-tokens", "100000"), ("x-ratelimit-reset-tokens", "5s")), Now, MaxCooldown);
        budgets.TryTake(Key, 10_000, Now.AddSeconds(0.5), out var sent).Should().BeTrue();
        budgets.Observe(
            Key,
            Headers(("x-ratelimit-remaining-tokens", "50000"), ("x-ratelimit-limit-tokens", "100000"), ("x-ratelimit-reset-tokens", "5s")),
            Now.AddSeconds(1),
            MaxCooldown,
            sentAt: Now.AddSeconds(1),
            ticket: sent);
        budgets.TryTake(Key, 30_000, Now.AddSeconds(2)).Should().BeTrue("sent after the last answer");

        // At the last reported reset (6 s) the backend holds 100,000 less the 30,000 sent at 2 s (refilled since: 20,000).
        var afterReset = Now.AddSeconds(6).AddMilliseconds(1);
        budgets.CanAdmit(Key, 80_000, afterReset).Should().BeFalse("what was sent since the report still counts");
        budgets.CanAdmit(Key, 70_000, afterReset).Should().BeTrue();
    }

    [Fact]
    public void A_budget_refilled_in_windows_holds_its_count_until_the_reset_though_its_answers_name_that_moment_a_millisecond_apart()
    {
        // Azure-like: 100,000 tokens every 10 s. The view counts a reset from the attempt's send, the backend from its own
        // admission a little later (or on its own clock, to the millisecond): two windows' moments can be 9.999 s apart.
        var budgets = new BackendBudgets();
        Observe(budgets, remaining: 90_000, reset: "10s", sentAt: Now, arrivedAt: Now.AddSeconds(0.5));
        Observe(budgets, remaining: 99_000, reset: "9.119s", sentAt: Now.AddSeconds(10.88), arrivedAt: Now.AddSeconds(10.9));
        Observe(budgets, remaining: 5_000, reset: "8.999s", sentAt: Now.AddSeconds(11), arrivedAt: Now.AddSeconds(11.1));

        var beforeReset = Now.AddSeconds(15);
        budgets.CanAdmit(Key, 6_000, beforeReset).Should().BeFalse("the window's 5,000 tokens are all the backend holds until it refills at 20 s");
        budgets.CanAdmit(Key, 5_000, beforeReset).Should().BeTrue();
        budgets.TimeUntilAdmitted(Key, 6_000, beforeReset).Should().Be(TimeSpan.FromSeconds(4.999));
    }

    [Fact]
    public void A_budget_refilled_in_windows_refills_whole_again_once_its_windows_come_steadily_after_one_late_answer_looked_continuous()
    {
        // 100,000 tokens every 10 s (at 10, 20, 30, 40 s). One answer was admitted 2 s after its send (queued at the
        // backend): counted from the send, its reset names 8 s where the window's other answer named 10 s, as a budget
        // refilled continuously would. Three windows later, each reported twice at one moment, 10 s apart.
        var budgets = new BackendBudgets();
        Observe(budgets, remaining: 90_000, reset: "10s", sentAt: Now, arrivedAt: Now.AddSeconds(0.5));
        Observe(budgets, remaining: 80_000, reset: "7s", sentAt: Now.AddSeconds(1), arrivedAt: Now.AddSeconds(3.5));
        for (var window = 1; window <= 3; window++)
        {
            var start = Now.AddSeconds(window * 10);
            Observe(budgets, remaining: 95_000, reset: "9.5s", sentAt: start.AddSeconds(0.5), arrivedAt: start.AddSeconds(1));
            if (window < 3)
            {
                Observe(budgets, remaining: 90_000, reset: "8s", sentAt: start.AddSeconds(2), arrivedAt: start.AddSeconds(2.5));
            }
        }

        budgets.TryTake(Key, 60_000, Now.AddSeconds(35)).Should().BeTrue();

        var afterReset = Now.AddSeconds(40).AddMilliseconds(1);
        budgets.CanAdmit(Key, 90_000, afterReset).Should().BeTrue("the window's refill at 40 s forgets what was spent in it");
        budgets.TryTake(Key, 100_000, afterReset).Should().BeTrue();
        budgets.CanAdmit(Key, 1, afterReset).Should().BeFalse("the refilled window is spent");
        budgets.TimeUntilAdmitted(Key, 1, afterReset).Should().Be(Now.AddSeconds(50) - afterReset, "the next refill is a window later");
    }

    [Fact]
    public void A_budget_refilled_continuously_stays_continuous_though_its_full_moments_step_by_the_same_gap_each_period()
    {
        // OpenAI-like: 100,000 tokens, refilled at 10,000 a second. Every 10 s a 60,000-token completion finds it full
        // (full again 6 s later), and a 20,000-token one a second after it moves that moment 2 s later (8 s): the full
        // moments step by the same 8 s every period, like windows, but move with every answer within one.
        var budgets = new BackendBudgets();
        for (var period = 0; period < 5; period++)
        {
            var start = Now.AddSeconds(period * 10);
            budgets.Observe(Key, Tokens(40_000, "6s"), start.AddSeconds(0.2), MaxCooldown, sentAt: start);
            budgets.Observe(Key, Tokens(30_000, "7s"), start.AddSeconds(1.2), MaxCooldown, sentAt: start.AddSeconds(1));
        }

        var last = Now.AddSeconds(40);
        budgets.TryTake(Key, 40_000, last.AddSeconds(2)).Should().BeTrue("30,000 at 41 s plus 10,000 refilled since");

        // The backend held nothing at 42 s, 60,000 at the last full moment the answers named (48 s).
        var atFull = last.AddSeconds(8).AddMilliseconds(1);
        budgets.CanAdmit(Key, 70_000, atFull).Should().BeFalse("what was sent since the last answer is not refilled by its full moment");
        budgets.CanAdmit(Key, 60_000, atFull).Should().BeTrue();
    }

    private static System.Net.Http.Headers.HttpResponseHeaders Tokens(long remaining, string reset)
        => Headers(("x-ratelimit-remaining-tokens", remaining.ToString(System.Globalization.CultureInfo.InvariantCulture)), ("x-ratelimit-limit-tokens", "100000"), ("x-ratelimit-reset-tokens", reset));

    private static void Observe(BackendBudgets budgets, long remaining, string reset, DateTimeOffset sentAt, DateTimeOffset arrivedAt)
        => budgets.Observe(
            Key,
            Headers(("x-ratelimit-remaining-tokens", remaining.ToString(System.Globalization.CultureInfo.InvariantCulture)), ("x-ratelimit-limit-tokens", "100000"), ("x-ratelimit-reset-tokens", reset)),
            arrivedAt,
            MaxCooldown,
            sentAt: sentAt);

    [Fact]
    public void An_answer_admitted_before_the_one_that_set_the_count_never_raises_it_back()
    {
        // Two completions admitted one after the other on a budget refilled continuously: the first had more left, and
        // so a sooner moment of being full again. Its answer, arriving after the second's, is older, not an odd report.
        var budgets = new BackendBudgets();
        budgets.Observe(Key, Headers(("x-ratelimit-remaining-tokens", "90000"), ("x-ratelimit-limit-tokens", "100000"), ("x-ratelimit-reset-tokens", "1s")), Now, MaxCooldown);
        var sent = Now.AddSeconds(0.5);
        budgets.TryTake(Key, 10_000, sent, out var first).Should().BeTrue();
        budgets.TryTake(Key, 70_000, sent, out var second).Should().BeTrue();

        budgets.Observe(Key, Headers(("x-ratelimit-remaining-tokens", "10000"), ("x-ratelimit-limit-tokens", "100000"), ("x-ratelimit-reset-tokens", "9s")), Now.AddSeconds(0.8), MaxCooldown, sent, second);
        budgets.Observe(Key, Headers(("x-ratelimit-remaining-tokens", "80000"), ("x-ratelimit-limit-tokens", "100000"), ("x-ratelimit-reset-tokens", "2s")), Now.AddSeconds(0.9), MaxCooldown, sent, first);

        budgets.CanAdmit(Key, 50_000, Now.AddSeconds(1)).Should().BeFalse("10,000 were left after the later admission");
        budgets.CanAdmit(Key, 10_000, Now.AddSeconds(1)).Should().BeTrue();
    }

    [Fact]
    public void A_spent_request_budget_holds_every_request_back_until_its_reset_even_one_of_unknown_cost()
    {
        var budgets = new BackendBudgets();
        budgets.Observe(Key, Headers(("x-ratelimit-remaining-requests", "1"), ("x-ratelimit-reset-requests", "2s")), Now, MaxCooldown);

        budgets.TryTake(Key, 0, Now).Should().BeTrue();
        budgets.TryTake(Key, 0, Now).Should().BeFalse("a request of unknown tokens is still one request");
        budgets.CanAdmit(Key, 1, Now).Should().BeFalse();
        budgets.TimeUntilAdmitted(Key, 0, Now).Should().Be(TimeSpan.FromSeconds(2));
    }

    [Fact]
    public void A_spent_token_budget_never_holds_back_a_request_of_unknown_cost()
    {
        var budgets = new BackendBudgets();
        budgets.Observe(Key, Headers(("x-ratelimit-remaining-tokens", "0"), ("x-ratelimit-reset-tokens", "10s")), Now, MaxCooldown);

        budgets.CanAdmit(Key, 1, Now).Should().BeFalse();
        budgets.TryTake(Key, 0, Now).Should().BeTrue("cost 0 is admitted by the token budget as if none were known");
        budgets.TimeUntilAdmitted(Key, 0, Now).Should().Be(TimeSpan.Zero);
    }

    [Fact]
    public void A_request_budget_reported_with_a_limit_of_0_admits_no_request()
    {
        // The rule the shared reservations keep too (RedisReservationTests and SharedReservationCounterTests, same name).
        var budgets = new BackendBudgets();
        budgets.Observe(Key, Headers(("x-ratelimit-remaining-requests", "0"), ("x-ratelimit-limit-requests", "0"), ("x-ratelimit-reset-requests", "10s")), Now, MaxCooldown);

        budgets.TimeUntilAdmitted(Key, 1_000, Now.AddSeconds(1)).Should().Be(TimeSpan.FromSeconds(9), "until the refill");
        budgets.CanAdmit(Key, 0, Now.AddSeconds(1)).Should().BeFalse("a request of unknown cost is still one request");
        budgets.CanAdmit(Key, 1_000, Now.AddSeconds(10)).Should().BeFalse("the refill brings a limit of 0 back");
    }

    [Fact]
    public void Partitions_have_budgets_of_their_own()
    {
        var budgets = new BackendBudgets();
        budgets.Observe(Key.ForPartition("gpt-4o"), Headers(("x-ratelimit-remaining-tokens", "0"), ("x-ratelimit-reset-tokens", "5s")), Now, MaxCooldown);

        budgets.CanAdmit(Key.ForPartition("gpt-4o"), 10, Now).Should().BeFalse();
        budgets.CanAdmit(Key.ForPartition("gpt-4o-mini"), 10, Now).Should().BeTrue();
        budgets.CanAdmit(Key, 10, Now).Should().BeTrue();
    }

    [Fact]
    public void The_view_is_bounded_and_an_untracked_key_routes_as_without_it()
    {
        var budgets = new BackendBudgets();
        for (var i = 0; i < BackendBudgets.MaxEntries + 10; i++)
        {
            budgets.Observe(Key.ForPartition("p" + i), Headers(("x-ratelimit-remaining-tokens", "0"), ("x-ratelimit-reset-tokens", "5s")), Now, MaxCooldown);
        }

        budgets.Count.Should().Be(BackendBudgets.MaxEntries);
        budgets.CanAdmit(Key.ForPartition("p" + (BackendBudgets.MaxEntries + 5)), 10, Now).Should().BeTrue();
    }

    [Fact]
    public void Promises_fill_the_refilled_budget_then_the_next_window_and_no_further()
    {
        var budgets = new BackendBudgets();
        budgets.Observe(
            Key,
            Headers(("x-ratelimit-remaining-tokens", "0"), ("x-ratelimit-limit-tokens", "10000"), ("x-ratelimit-reset-tokens", "10s")),
            Now,
            MaxCooldown);
        var reset = Now.AddSeconds(10);

        budgets.Promise(Key, 4000, reset).Should().Be(reset);
        budgets.Promise(Key, 4000, reset).Should().Be(reset);
        budgets.Promise(Key, 4000, reset).Should().Be(reset.AddSeconds(10), "8,000 of 10,000 are promised at the reset");
        budgets.Promise(Key, 6000, reset).Should().Be(reset.AddSeconds(10));
        budgets.Promise(Key, 1, reset).Should().Be(reset, "both windows of the horizon are full: the soonest moment, nothing reserved");
        budgets.Promise(Key, 1, reset.AddSeconds(30)).Should().Be(reset.AddSeconds(30), "promises of past windows are kept or broken by now");
    }

    [Fact]
    public void After_one_long_reset_the_budget_refills_every_window_the_backend_reports_again()
    {
        // The backend refills every 10 s (at 10, 20, 30…); each window, a request taken after the refill (which rolls
        // the view to a window it assumes) comes before the answer that reports the window. The answer in window 2
        // reports one long reset (14 s).
        var budgets = new BackendBudgets();
        for (var window = 1; window <= 5; window++)
        {
            var start = Now.AddSeconds((window - 1) * 10);
            budgets.TryTake(Key, 1, start.AddMilliseconds(1)).Should().BeTrue();
            var reset = window == 2 ? "14s" : "9.5s";
            budgets.Observe(
                Key,
                Headers(("x-ratelimit-remaining-tokens", "5000"), ("x-ratelimit-limit-tokens", "10000"), ("x-ratelimit-reset-tokens", reset)),
                start.AddMilliseconds(500),
                MaxCooldown);
        }

        // Past the last reported reset (50 s) the view assumes the next window: it refills at 60 s, not 14 s later.
        var assumed = Now.AddSeconds(50).AddMilliseconds(1);
        budgets.TryTake(Key, 10_000, assumed).Should().BeTrue("the assumed window is full");
        budgets.TimeUntilAdmitted(Key, 1000, assumed).Should().Be(Now.AddSeconds(60) - assumed);
    }

    [Fact]
    public void Request_budgets_bound_the_promises_too()
    {
        var budgets = new BackendBudgets();
        budgets.Observe(
            Key,
            Headers(("x-ratelimit-remaining-requests", "0"), ("x-ratelimit-limit-requests", "2"), ("x-ratelimit-reset-requests", "1s")),
            Now,
            MaxCooldown);
        var reset = Now.AddSeconds(1);

        budgets.Promise(Key, 0, reset).Should().Be(reset);
        budgets.Promise(Key, 0, reset).Should().Be(reset);
        budgets.Promise(Key, 0, reset).Should().Be(reset.AddSeconds(1));
    }

    [Fact]
    public void Answers_without_budgets_change_nothing_and_garbage_is_ignored()
    {
        var budgets = new BackendBudgets();
        budgets.Observe(Key, Headers(("x-ratelimit-remaining-tokens", "lots"), ("retry-after", "5")), Now, MaxCooldown);
        budgets.Observe(Key, Headers(("x-ratelimit-remaining-tokens", "-3")), Now, MaxCooldown);

        budgets.Count.Should().Be(0);
    }

    private static System.Net.Http.Headers.HttpResponseHeaders Headers(params (string Name, string Value)[] headers)
    {
        var response = new HttpResponseMessage(HttpStatusCode.OK);
        foreach (var (name, value) in headers)
        {
            response.Headers.TryAddWithoutValidation(name, value);
        }

        return response.Headers;
    }
}
