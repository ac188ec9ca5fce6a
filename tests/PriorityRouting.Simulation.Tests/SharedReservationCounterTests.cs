using Polly.PriorityRouting;
using PriorityRouting.Simulation.Routers;

namespace PriorityRouting.Simulation.Tests;

public class SharedReservationCounterTests
{
    private static readonly DateTimeOffset Start = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly BackendStateKey Ptu = new("ptu@http://ptu/", null);

    [Fact]
    public void A_window_refills_when_the_backend_refills_not_when_its_longest_reported_reset_delay_says()
    {
        // A backend refilled every 10 s at 10 s and 20 s; the first request of each window came 20-30 ms after the
        // refill, so no answer ever reports a reset delay of a full 10 s.
        var counter = new SharedReservationCounter();
        var first = counter.Reserve(Ptu, 1_000, 0, 0, Start.AddMilliseconds(20));
        counter.Correct(first, Tokens(199_000, 200_000, TimeSpan.FromMilliseconds(9_980), Start.AddMilliseconds(20), Start.AddSeconds(0.5)), Start.AddSeconds(0.5));
        var second = counter.Reserve(Ptu, 1_000, 0, 0, Start.AddMilliseconds(10_030));
        second.Status.Should().Be(BackendReservationStatus.Granted);
        counter.Correct(second, Tokens(199_000, 200_000, TimeSpan.FromMilliseconds(9_970), Start.AddMilliseconds(10_030), Start.AddSeconds(10.5)), Start.AddSeconds(10.5));
        Reserve(counter, Start.AddSeconds(20.5), 199_000).Should().Be(BackendReservationStatus.Granted);

        // The window that began at 20 s ends at 30 s: at 29.98 s it still has only 1,000 left.
        var refused = counter.Reserve(Ptu, 5_000, 0, 0, Start.AddMilliseconds(29_980));
        refused.Status.Should().Be(BackendReservationStatus.Refused);
        refused.RetryAfter.Should().Be(TimeSpan.FromMilliseconds(20));
        counter.TryGetAvailable(Ptu, Start.AddMilliseconds(29_980), out var available, out var resetAt).Should().BeTrue();
        (available, resetAt).Should().Be((1_000L, Start.AddSeconds(30)));
        Reserve(counter, Start.AddSeconds(30), 5_000).Should().Be(BackendReservationStatus.Granted);
    }

    [Fact]
    public void A_late_answer_keeps_what_was_reserved_after_it_was_sent_even_within_the_same_instant()
    {
        var counter = new SharedReservationCounter();
        var seed = counter.Reserve(Ptu, 1_000, 0, 0, Start);
        counter.Correct(seed, Tokens(9_000, 10_000, TimeSpan.FromSeconds(10), Start, Start), Start);
        var first = counter.Reserve(Ptu, 1_000, 0, 0, Start.AddSeconds(1));
        Reserve(counter, Start.AddSeconds(1), 3_000).Should().Be(BackendReservationStatus.Granted, "another replica reserves in the same tick, after it");

        // The first request's answer arrives 5 s after its admission, reporting what the backend had left then.
        counter.Correct(first, Tokens(8_000, 10_000, TimeSpan.FromSeconds(9), Start.AddSeconds(1), Start.AddSeconds(6)), Start.AddSeconds(6));

        counter.TryGetAvailable(Ptu, Start.AddSeconds(6), out var available, out _).Should().BeTrue();
        available.Should().Be(5_000, "2,000 spent when it was admitted, 3,000 reserved since");
        Reserve(counter, Start.AddSeconds(6), 5_001).Should().Be(BackendReservationStatus.Refused);
    }

    // A budget refilled continuously, as a flow (SharedReservationCounter.Flow.cs; the Redis script's rule too:
    // RedisReservationTests and RedisClaimTests, same names). Two reports name full moments 60 s apart, less than the
    // 260 s window: continuous. The second says 5,000 were lacking, all back in 260 s: 5,000 / 260 s, about 19 a second.

    [Fact]
    public void A_budget_refilled_continuously_gives_back_what_its_report_lacked_at_the_rate_the_report_tells()
    {
        var counter = Flowing();
        Reserve(counter, Start, 3_000).Should().Be(BackendReservationStatus.Granted, "5,000 + 3,000 fit the 10,000");

        // 130 s later half of what the report lacked is back: 5,500 spent.
        var later = Start.AddSeconds(130);
        Reserve(counter, later, 4_700).Should().Be(BackendReservationStatus.Refused);
        Reserve(counter, later, 4_300).Should().Be(BackendReservationStatus.Granted);

        var refused = counter.Reserve(Ptu, 1_000, 0, 0, later);
        refused.Status.Should().Be(BackendReservationStatus.Refused);
        refused.RetryAfter.Should().BeCloseTo(TimeSpan.FromSeconds(41.6), TimeSpan.FromMilliseconds(1), "800 more must come back first, at 5,000 / 260 s");
    }

    [Fact]
    public void A_budget_refilled_continuously_gives_back_a_reservation_the_backend_did_not_count()
    {
        var counter = Flowing();
        var refusedByTheBackend = counter.Reserve(Ptu, 3_000, 0, 0, Start);
        Reserve(counter, Start, 2_000).Should().Be(BackendReservationStatus.Granted);
        counter.Release(refusedByTheBackend);

        Reserve(counter, Start, 3_200).Should().Be(BackendReservationStatus.Refused, "5,000 + 2,000 are spent");
        Reserve(counter, Start, 2_800).Should().Be(BackendReservationStatus.Granted);
    }

    [Fact]
    public void A_claim_on_a_continuous_budget_waits_behind_the_claims_before_it_and_newcomers_never_take_its_room()
    {
        var counter = Flowing();
        var first = counter.Reserve(Ptu, 5_500, 0, 0, claimant: 1, Start);
        var second = counter.Reserve(Ptu, 300, 0, 0, claimant: 2, Start);

        first.HoldsClaim.Should().BeTrue();
        first.RetryAfter.Should().BeCloseTo(TimeSpan.FromSeconds(26), TimeSpan.FromMilliseconds(1), "500 must come back first");
        second.HoldsClaim.Should().BeTrue();
        second.RetryAfter.Should().BeCloseTo(TimeSpan.FromSeconds(41.6), TimeSpan.FromMilliseconds(1), "behind the first claim: 800 must come back");
        Reserve(counter, Start, 100).Should().Be(BackendReservationStatus.Refused);

        var firstDue = Start + first.RetryAfter;
        Reserve(counter, firstDue, 100).Should().Be(BackendReservationStatus.Refused, "what came back is the first claimant's");
        counter.Reserve(Ptu, 5_500, 0, 0, claimant: 1, firstDue).Status.Should().Be(BackendReservationStatus.Granted, "its room was counted when it claimed");
        Reserve(counter, firstDue, 100).Should().Be(BackendReservationStatus.Refused, "what comes back next is the second claimant's");
        var early = counter.Reserve(Ptu, 300, 0, 0, claimant: 2, firstDue);
        early.HoldsClaim.Should().BeTrue();
        early.RetryAfter.Should().BeCloseTo(TimeSpan.FromSeconds(15.6), TimeSpan.FromMilliseconds(2));

        var secondDue = Start + second.RetryAfter;
        counter.Reserve(Ptu, 300, 0, 0, claimant: 2, secondDue).Status.Should().Be(BackendReservationStatus.Granted);
        Reserve(counter, secondDue, 100).Should().Be(BackendReservationStatus.Refused, "the 10,000 are spent");
        Reserve(counter, secondDue.AddSeconds(10.4), 100).Should().Be(BackendReservationStatus.Granted, "200 came back since");
    }

    [Fact]
    public void A_claim_on_a_continuous_budget_given_back_or_expired_frees_its_room()
    {
        var counter = Flowing();
        counter.Reserve(Ptu, 5_500, 0, 0, claimant: 1, Start).HoldsClaim.Should().BeTrue();
        counter.Unclaim(Ptu, 1, Start);
        Reserve(counter, Start, 4_700).Should().Be(BackendReservationStatus.Granted, "the claim given back left 5,000 spent");

        var claim = counter.Reserve(Ptu, 500, 0, 0, claimant: 2, Start);
        claim.HoldsClaim.Should().BeTrue();
        claim.RetryAfter.Should().BeCloseTo(TimeSpan.FromSeconds(10.4), TimeSpan.FromMilliseconds(1));

        // Its grace ends unredeemed: 10,200 less what came back in 13.4 s (about 258) less its own 500.
        var expired = Start + claim.RetryAfter + SharedReservationCounter.Grace + TimeSpan.FromSeconds(1);
        Reserve(counter, expired, 400).Should().Be(BackendReservationStatus.Granted);
    }

    [Fact]
    public void A_newcomer_takes_the_room_a_claim_given_back_left_while_every_later_claim_still_has_its_room_at_its_moment()
    {
        var counter = Flowing();
        counter.Reserve(Ptu, 5_500, 0, 0, claimant: 1, Start).HoldsClaim.Should().BeTrue();
        var second = counter.Reserve(Ptu, 300, 0, 0, claimant: 2, Start);
        second.RetryAfter.Should().BeCloseTo(TimeSpan.FromSeconds(41.6), TimeSpan.FromMilliseconds(1), "behind the first claim");
        counter.Unclaim(Ptu, 1, Start);

        // 5,300 counted (5,000 spent, the second claim's 300): 4,900 more is over the 10,000, but the bucket holds 5,000
        // now, and 800 come back by the second claim's moment, which needs 300 of them.
        Reserve(counter, Start, 4_900).Should().Be(BackendReservationStatus.Granted);
        Reserve(counter, Start, 200).Should().Be(BackendReservationStatus.Refused, "100 are left now");
        counter.Reserve(Ptu, 300, 0, 0, claimant: 2, Start + second.RetryAfter).Status.Should().Be(BackendReservationStatus.Granted, "its room came back by its moment");
    }

    [Fact]
    public void A_gap_in_a_queue_of_more_than_512_claims_is_not_read_the_counts_answer_stands()
    {
        // The Redis script reads the claims for a gap only while the set holds 1 to 512 (MAXROOMSCAN).
        var counter = Flowing();
        counter.Reserve(Ptu, 5_500, 0, 0, claimant: 1, Start).HoldsClaim.Should().BeTrue();
        for (var claimant = 2L; claimant <= 514; claimant++)
        {
            counter.Reserve(Ptu, 1, 0, 0, claimant, Start).HoldsClaim.Should().BeTrue();
        }

        counter.Unclaim(Ptu, 1, Start);

        // 5,513 counted (5,000 spent, 513 claims of 1 from 26 s on): the bucket holds 5,000 now, but 513 claims are not read.
        Reserve(counter, Start, 4_900).Should().Be(BackendReservationStatus.Refused, "513 claims queued: the count's answer");
        counter.Unclaim(Ptu, 514, Start);
        Reserve(counter, Start, 4_900).Should().Be(BackendReservationStatus.Granted, "512 claims queued: their gap is read");
    }

    [Fact]
    public void A_continuous_budget_ends_the_foregrounds_windows_without_a_report()
    {
        var counter = Flowing();
        var later = Start.AddSeconds(2_000);
        Reserve(counter, later, 20).Should().Be(BackendReservationStatus.Granted);
        counter.Reserve(Ptu, 5_000, 0.1, 0, later).Status.Should().Be(BackendReservationStatus.Granted, "the foreground's peak of 5,000, halved per window ended since (7 of 260 s), leaves room for it");
    }

    /// <summary>A budget of 10,000 learned continuous, 5,000 of it spent and coming back at 5,000 per 260 s from <see cref="Start"/>.</summary>
    private static SharedReservationCounter Flowing()
    {
        var counter = new SharedReservationCounter();
        counter.Correct(counter.Reserve(Ptu, 1_000, 0, 0, Start), Tokens(9_000, 10_000, TimeSpan.FromSeconds(200), Start, Start), Start);
        counter.Correct(counter.Reserve(Ptu, 4_000, 0, 0, Start), Tokens(5_000, 10_000, TimeSpan.FromSeconds(260), Start, Start), Start);
        return counter;
    }

    [Fact]
    public void A_late_answer_of_an_earlier_admission_never_brings_the_budgets_refill_forward()
    {
        // The Redis script's rule too (RedisReservationTests, same name): a budget refilled continuously names a sooner
        // full moment in the answer of a request admitted earlier, which can arrive after a later one's.
        var counter = new SharedReservationCounter();
        var earlier = counter.Reserve(Ptu, 1_000, 0, 0, Start);
        var later = counter.Reserve(Ptu, 4_000, 0, 0, Start);
        counter.Correct(later, Tokens(5_000, 10_000, TimeSpan.FromMilliseconds(2_600), Start, Start.AddSeconds(0.5)), Start.AddSeconds(0.5));
        counter.Correct(earlier, Tokens(9_000, 10_000, TimeSpan.FromMilliseconds(2_560), Start, Start.AddSeconds(1)), Start.AddSeconds(1));

        Reserve(counter, Start.AddMilliseconds(2_580), 5_001).Should().Be(BackendReservationStatus.Refused, "the backend is full only at 2.6 s: 5,000 left until then");
        Reserve(counter, Start.AddMilliseconds(2_600), 10_000).Should().Be(BackendReservationStatus.Granted);
    }

    [Fact]
    public void A_window_refilled_at_once_forgets_at_its_end_what_was_reserved_after_its_last_report()
    {
        var counter = new SharedReservationCounter();
        var first = counter.Reserve(Ptu, 1_000, 0, 0, Start);
        counter.Correct(first, Tokens(9_000, 10_000, TimeSpan.FromMilliseconds(2_000), Start, Start), Start);
        var second = counter.Reserve(Ptu, 4_000, 0, 0, Start.AddMilliseconds(500));
        counter.Correct(second, Tokens(5_000, 10_000, TimeSpan.FromMilliseconds(1_500), Start.AddMilliseconds(500), Start.AddMilliseconds(500)), Start.AddMilliseconds(500));
        Reserve(counter, Start.AddMilliseconds(500), 3_000).Should().Be(BackendReservationStatus.Granted);

        Reserve(counter, Start.AddMilliseconds(2_000), 10_000).Should().Be(BackendReservationStatus.Granted, "both reports named one refill: a step");
    }

    [Fact]
    public void A_background_reservation_leaves_the_headroom_free()
    {
        var counter = new SharedReservationCounter();
        // A background seed: the foreground's peak would keep the whole window (A_background_reservation_leaves_free_the_foreground_demand_...).
        var seed = counter.Reserve(Ptu, 1_000, 0.2, 0, Start);
        counter.Correct(seed, Tokens(9_000, 10_000, TimeSpan.FromSeconds(10), Start, Start), Start);

        counter.Reserve(Ptu, 7_500, 0.2, 0, Start).Status.Should().Be(BackendReservationStatus.Refused, "1,000 + 7,500 would leave less than 2,000 free");
        counter.Reserve(Ptu, 7_000, 0.2, 0, Start).Status.Should().Be(BackendReservationStatus.Granted);
        counter.Reserve(Ptu, 2_000, 0, 0, Start).Status.Should().Be(BackendReservationStatus.Granted, "a foreground request takes the headroom");
    }

    [Fact]
    public void A_background_request_larger_than_the_share_outside_the_headroom_is_admitted_on_a_full_budget_as_by_the_Redis_script()
    {
        var counter = new SharedReservationCounter();
        // A background seed: the foreground's peak would keep the whole window (A_background_reservation_leaves_free_the_foreground_demand_...).
        var seed = counter.Reserve(Ptu, 1_000, 0.2, 0, Start);
        counter.Correct(seed, Tokens(10_000, 10_000, TimeSpan.FromSeconds(10), Start, Start), Start);

        counter.Reserve(Ptu, 9_000, 0.2, 0.1, Start).Status.Should().Be(BackendReservationStatus.Refused, "1,000 is promised to foreground callers");
        counter.Reserve(Ptu, 9_000, 0.2, 0, Start).Status.Should().Be(BackendReservationStatus.Granted);
        counter.Reserve(Ptu, 9_000, 0.2, 0, Start).Status.Should().Be(BackendReservationStatus.Refused, "the budget is no longer full");
    }

    [Fact]
    public void A_background_reservation_leaves_free_the_foreground_demand_of_every_replica_expected_until_the_reset()
    {
        var counter = new SharedReservationCounter();
        var seed = counter.Reserve(Ptu, 1_000, 0, 0, Start);
        counter.Correct(seed, Tokens(9_000, 10_000, TimeSpan.FromSeconds(10), Start, Start), Start);
        Reserve(counter, Start.AddSeconds(1), 5_000).Should().Be(BackendReservationStatus.Granted, "the foreground's peak: 5,000 within one second");

        var next = Start.AddSeconds(10);
        var early = counter.Reserve(Ptu, 3_000, 0.2, 0, next);
        early.Status.Should().Be(BackendReservationStatus.Refused, "early in the next window the foreground can spend 10 s at its peak, more than the budget");
        early.RetryAfter.Should().Be(TimeSpan.FromSeconds(9), "one second at the peak leaves 3,000 and the headroom: the window's last second");

        var late = next.AddSeconds(9.5);
        counter.Reserve(Ptu, 3_001, 0.2, 0, late).Status.Should().Be(BackendReservationStatus.Refused, "half a second left: 5,000 are expected for the foreground, 2,000 are the headroom");
        counter.Reserve(Ptu, 3_000, 0.2, 0, late).Status.Should().Be(BackendReservationStatus.Granted);
        Reserve(counter, late, 4_000).Should().Be(BackendReservationStatus.Granted, "a foreground reservation may use what is expected");
        counter.Reserve(Ptu, 1, 0.2, 0, late).Status.Should().Be(BackendReservationStatus.Refused, "nothing is left beyond the headroom");

        counter.Reserve(Ptu, 8_000, 0.2, 0, Start.AddSeconds(200)).Status.Should().Be(BackendReservationStatus.Granted, "quiet windows halve the peak to nothing: a nightly batch has the budget less the headroom");
    }

    [Fact]
    public void A_released_reservation_gives_its_room_back_in_its_window_only()
    {
        var counter = new SharedReservationCounter();
        var seed = counter.Reserve(Ptu, 1_000, 0, 0, Start);
        counter.Correct(seed, Tokens(9_000, 10_000, TimeSpan.FromSeconds(10), Start, Start), Start);
        var refusedByTheBackend = counter.Reserve(Ptu, 4_000, 0, 0, Start.AddSeconds(1));
        var old = counter.Reserve(Ptu, 5_000, 0, 0, Start.AddSeconds(2));

        counter.Release(refusedByTheBackend);
        counter.TryGetAvailable(Ptu, Start.AddSeconds(2), out var available, out _).Should().BeTrue();
        available.Should().Be(4_000);

        Reserve(counter, Start.AddSeconds(10), 9_000).Should().Be(BackendReservationStatus.Granted, "the next window");
        counter.Release(old);
        counter.TryGetAvailable(Ptu, Start.AddSeconds(10), out available, out _).Should().BeTrue();
        available.Should().Be(1_000, "a reservation of the window before gives nothing back in this one");
    }

    [Fact]
    public void A_release_of_a_reservation_made_before_the_report_that_set_the_count_gives_nothing_back()
    {
        // The Redis script's rule too (RedisReservationTests, same name).
        var counter = new SharedReservationCounter();
        var early = counter.Reserve(Ptu, 1_000, 0, 0, Start);
        var later = counter.Reserve(Ptu, 4_000, 0, 0, Start);
        counter.Correct(later, Tokens(6_000, 10_000, TimeSpan.FromSeconds(30), Start, Start), Start);

        counter.Release(early);

        counter.Reserve(Ptu, 6_001, 0, 0, Start).Status.Should().Be(BackendReservationStatus.Refused, "the backend has 6,000 left");
        counter.Reserve(Ptu, 6_000, 0, 0, Start).Status.Should().Be(BackendReservationStatus.Granted);
    }

    [Fact]
    public void A_release_of_a_reservation_made_before_a_report_that_raised_the_count_gives_nothing_back()
    {
        // The Redis script's rule too (RedisReservationTests, same name).
        var counter = new SharedReservationCounter();
        counter.Correct(counter.Reserve(Ptu, 1_000, 0, 0, Start), Tokens(9_000, 10_000, TimeSpan.FromSeconds(30), Start, Start), Start);
        var early = counter.Reserve(Ptu, 1_000, 0, 0, Start);
        var later = counter.Reserve(Ptu, 4_000, 0, 0, Start);

        // Same window: the backend admitted the later request and reported 7,000 spent (more than the 6,000 counted:
        // some spend the counter never saw), which raises the count; then it refused the early one (a 429). The raised
        // count never held the early one, so its release must not take 1,000 off what the backend has spent.
        counter.Correct(later, Tokens(3_000, 10_000, TimeSpan.FromSeconds(30), Start, Start), Start);
        counter.Release(early);

        counter.Reserve(Ptu, 3_001, 0, 0, Start).Status.Should().Be(BackendReservationStatus.Refused, "the backend has 3,000 left");
        counter.Reserve(Ptu, 3_000, 0, 0, Start).Status.Should().Be(BackendReservationStatus.Granted);
    }

    [Fact]
    public void A_request_of_unknown_cost_counts_no_tokens_and_is_never_held_back_by_the_token_budget()
    {
        // The replica view's rule (BackendBudget.TimeUntilAdmitted), and the Redis script's (RedisReservationTests, same name).
        var counter = new SharedReservationCounter();
        counter.Correct(counter.Reserve(Ptu, 1_000, 0, 0, Start), Tokens(1_000, 10_000, TimeSpan.FromSeconds(30), Start, Start), Start);

        Reserve(counter, Start, 0).Should().Be(BackendReservationStatus.Granted);
        Reserve(counter, Start, 0).Should().Be(BackendReservationStatus.Granted);
        Reserve(counter, Start, 1_000).Should().Be(BackendReservationStatus.Granted, "the two requests of unknown cost counted no tokens: 1,000 are left");
        Reserve(counter, Start, 1).Should().Be(BackendReservationStatus.Refused);
        Reserve(counter, Start, 0).Should().Be(BackendReservationStatus.Granted, "a spent token budget never holds back a request of unknown cost");
    }

    [Fact]
    public void A_request_budget_reported_with_a_limit_of_0_admits_no_request()
    {
        // The replica view's rule (BackendBudgetsTests, same name), and the Redis script's (RedisReservationTests, same name).
        var counter = new SharedReservationCounter();
        counter.Correct(counter.Reserve(Ptu, 1_000, 0, 0, Start), Requests(0, 0, TimeSpan.FromSeconds(10), Start, Start), Start);

        // A foreground request that may claim: no refill can hold it, so it is told the refill and claims nothing.
        var refused = counter.Reserve(Ptu, 1_000, 0, 0, claimant: 42, Start.AddSeconds(1));
        (refused.Status, refused.HoldsClaim).Should().Be((BackendReservationStatus.Refused, false));
        refused.RetryAfter.Should().Be(TimeSpan.FromSeconds(9), "until the refill");
        Reserve(counter, Start.AddSeconds(1), 0).Should().Be(BackendReservationStatus.Refused, "a request of unknown cost is still one request");
        counter.Reserve(Ptu, 1_000, 0, 0, claimant: 42, Start.AddSeconds(2)).RetryAfter.Should().Be(TimeSpan.FromSeconds(8), "no claim of it waits");
        Reserve(counter, Start.AddSeconds(10), 1_000).Should().Be(BackendReservationStatus.Refused, "the refill brings a limit of 0 back");
    }

    [Fact]
    public void A_foreground_request_larger_than_the_whole_budget_counts_as_its_limit_in_the_foreground_demand()
    {
        // The replica view's rule (BackgroundHeadroomTests, same name), and the Redis script's (RedisReservationTests, same name).
        var counter = new SharedReservationCounter();
        counter.Correct(counter.Reserve(Ptu, 1_000, 0, 0, Start), Tokens(10_000, 10_000, TimeSpan.FromSeconds(10), Start, Start), Start);
        Reserve(counter, Start, 1_000_000).Should().Be(BackendReservationStatus.Granted, "only the backend can judge it");

        var twoWindowsLater = Start.AddSeconds(29.5);
        counter.Reserve(Ptu, 3_001, 0.2, 0, twoWindowsLater).Status.Should().Be(BackendReservationStatus.Refused);
        counter.Reserve(Ptu, 3_000, 0.2, 0, twoWindowsLater).Status.Should().Be(
            BackendReservationStatus.Granted, "at most 10,000 within one second two windows ago: a peak of 5,000 now, expected in the window's last half second, and 2,000 are the headroom");
    }

    [Fact]
    public void Nothing_known_refuses_nothing_and_says_so()
    {
        var counter = new SharedReservationCounter();

        var reservation = counter.Reserve(Ptu, 1_000_000, 0, 0, Start);

        reservation.Status.Should().Be(BackendReservationStatus.Unknown);
        reservation.IsCounted.Should().BeTrue("its answer corrects the counter");
        counter.TryGetAvailable(Ptu, Start, out _, out _).Should().BeFalse();
        counter.Refused.Should().Be(0);
    }

    // Claims: the Redis script's rule too (RedisReservationTests, same names). A budget of 10,000 tokens refilled every
    // 10 s (at 10 s, 20 s, ...), 9,000 of it spent at the start.
    [Fact]
    public void A_refused_foreground_request_claims_the_soonest_refill_where_it_fits()
    {
        var counter = SpentUntil10s();

        var first = counter.Reserve(Ptu, 6_000, 0, 0, claimant: 42, Start.AddSeconds(1));
        (first.Status, first.HoldsClaim, first.RetryAfter).Should().Be((BackendReservationStatus.Refused, true, TimeSpan.FromSeconds(9)));

        var second = counter.Reserve(Ptu, 5_000, 0, 0, claimant: 43, Start.AddSeconds(1));
        (second.Status, second.HoldsClaim, second.RetryAfter).Should().Be(
            (BackendReservationStatus.Refused, true, TimeSpan.FromSeconds(19)), "4,000 of the refill at 10 s are unclaimed: the next one has room");

        var third = counter.Reserve(Ptu, 4_000, 0, 0, claimant: 44, Start.AddSeconds(2));
        (third.Status, third.HoldsClaim, third.RetryAfter).Should().Be((BackendReservationStatus.Refused, true, TimeSpan.FromSeconds(8)), "it fits the refill at 10 s");
    }

    [Fact]
    public void Claimed_room_is_left_free_for_its_claimant()
    {
        var counter = SpentUntil10s();
        counter.Reserve(Ptu, 6_000, 0, 0, claimant: 42, Start.AddSeconds(1)).HoldsClaim.Should().BeTrue();

        var refill = Start.AddSeconds(10);
        Reserve(counter, refill, 4_001).Should().Be(BackendReservationStatus.Refused, "6,000 of the refill are claimed");
        counter.Reserve(Ptu, 4_001, 0, 0, claimant: 43, refill).RetryAfter.Should().Be(TimeSpan.FromSeconds(10), "another claimant claims the next refill");
        Reserve(counter, refill, 4_000).Should().Be(BackendReservationStatus.Granted);

        counter.Reserve(Ptu, 6_000, 0, 0, claimant: 42, refill.AddSeconds(1.5)).Status.Should().Be(BackendReservationStatus.Granted, "its claimant comes back within the grace");
        Reserve(counter, refill.AddSeconds(1.5), 1).Should().Be(BackendReservationStatus.Refused, "the refill is spent");
    }

    [Fact]
    public void A_claimant_that_comes_back_early_is_told_the_time_left_to_its_claim()
    {
        var counter = SpentUntil10s();
        counter.Reserve(Ptu, 6_000, 0, 0, claimant: 42, Start.AddSeconds(1)).HoldsClaim.Should().BeTrue();

        // Early, although the current window has room for 500 now: its claim decides.
        var early = counter.Reserve(Ptu, 500, 0, 0, claimant: 42, Start.AddSeconds(6));
        (early.Status, early.HoldsClaim, early.RetryAfter).Should().Be((BackendReservationStatus.Refused, true, TimeSpan.FromSeconds(4)));

        Reserve(counter, Start.AddSeconds(10), 4_001).Should().Be(BackendReservationStatus.Refused, "the claim stays");
        counter.Reserve(Ptu, 6_000, 0, 0, claimant: 42, Start.AddSeconds(10)).Status.Should().Be(BackendReservationStatus.Granted);
    }

    [Fact]
    public void Claimed_room_no_claimant_redeemed_within_the_grace_is_free_again()
    {
        var counter = SpentUntil10s();
        counter.Reserve(Ptu, 6_000, 0, 0, claimant: 42, Start.AddSeconds(1)).HoldsClaim.Should().BeTrue();

        Reserve(counter, Start.AddMilliseconds(11_999), 4_001).Should().Be(BackendReservationStatus.Refused, "its grace lasts 2 s after its moment");
        Reserve(counter, Start.AddSeconds(12), 10_000).Should().Be(BackendReservationStatus.Granted, "the grace is over");

        var late = counter.Reserve(Ptu, 6_000, 0, 0, claimant: 42, Start.AddSeconds(12));
        (late.Status, late.HoldsClaim, late.RetryAfter).Should().Be(
            (BackendReservationStatus.Refused, true, TimeSpan.FromSeconds(8)), "its claim is gone: refused like anyone, it claims the next refill");
    }

    [Fact]
    public void A_background_request_never_claims_and_leaves_claimed_room_free()
    {
        // A background seed: the foreground's expected demand is then nothing (see the background tests above).
        var counter = new SharedReservationCounter();
        counter.Correct(counter.Reserve(Ptu, 1_000, 0.2, 0, Start), Tokens(1_000, 10_000, TimeSpan.FromSeconds(10), Start, Start), Start);

        var background = counter.Reserve(Ptu, 5_000, 0.2, 0, claimant: 7, Start.AddSeconds(1));
        (background.Status, background.HoldsClaim, background.RetryAfter).Should().Be((BackendReservationStatus.Refused, false, TimeSpan.FromSeconds(9)));
        var foreground = counter.Reserve(Ptu, 5_000, 0, 0, claimant: 42, Start.AddSeconds(1));
        (foreground.HoldsClaim, foreground.RetryAfter).Should().Be((true, TimeSpan.FromSeconds(9)), "the background request claimed nothing");

        var refill = Start.AddSeconds(10);
        counter.Reserve(Ptu, 3_001, 0.2, 0, claimant: 7, refill).Status.Should().Be(
            BackendReservationStatus.Refused, "5,000 are claimed and 2,000 are the headroom");
        counter.Reserve(Ptu, 3_000, 0.2, 0, claimant: 7, refill).Status.Should().Be(BackendReservationStatus.Granted);
        counter.Reserve(Ptu, 5_000, 0, 0, claimant: 42, refill).Status.Should().Be(BackendReservationStatus.Granted);
    }

    [Fact]
    public void A_claim_fits_the_windows_of_both_tokens_and_requests()
    {
        // The counter keeps the one budget a backend reports per key: a token budget counts a claim's tokens, a request
        // budget one request per claim, whatever its tokens (the Redis store keeps both on one key: its test checks both at once).
        var tokens = SpentUntil10s();
        tokens.Reserve(Ptu, 9_000, 0, 0, claimant: 1, Start.AddSeconds(1)).RetryAfter.Should().Be(TimeSpan.FromSeconds(9));
        tokens.Reserve(Ptu, 1_001, 0, 0, claimant: 2, Start.AddSeconds(1)).RetryAfter.Should().Be(TimeSpan.FromSeconds(19), "1,000 tokens of the refill at 10 s are unclaimed");
        tokens.Reserve(Ptu, 1_000, 0, 0, Start.AddSeconds(10)).Status.Should().Be(BackendReservationStatus.Granted, "the unclaimed 1,000 of the refill");
        tokens.Reserve(Ptu, 1, 0, 0, Start.AddSeconds(10)).Status.Should().Be(BackendReservationStatus.Refused);

        var requests = new SharedReservationCounter();
        requests.Correct(requests.Reserve(Ptu, 1_000, 0, 0, Start), Requests(0, 2, TimeSpan.FromSeconds(10), Start, Start), Start);
        requests.Reserve(Ptu, 9_000, 0, 0, claimant: 1, Start.AddSeconds(1)).RetryAfter.Should().Be(TimeSpan.FromSeconds(9));
        requests.Reserve(Ptu, 9_000, 0, 0, claimant: 2, Start.AddSeconds(1)).RetryAfter.Should().Be(TimeSpan.FromSeconds(9), "a refill of 2 requests holds two claims, whatever their tokens");
        requests.Reserve(Ptu, 1, 0, 0, claimant: 3, Start.AddSeconds(1)).RetryAfter.Should().Be(TimeSpan.FromSeconds(19));
        requests.Reserve(Ptu, 1, 0, 0, Start.AddSeconds(10)).Status.Should().Be(BackendReservationStatus.Refused, "both requests of the refill are claimed");
    }

    [Fact]
    public void A_refusal_names_the_soonest_refill_with_unclaimed_room()
    {
        var counter = SpentUntil10s();
        counter.Reserve(Ptu, 8_000, 0, 0, claimant: 42, Start.AddSeconds(1)).HoldsClaim.Should().BeTrue();

        var unclaimed = counter.Reserve(Ptu, 3_000, 0, 0, Start.AddSeconds(1));
        (unclaimed.Status, unclaimed.HoldsClaim, unclaimed.RetryAfter).Should().Be(
            (BackendReservationStatus.Refused, false, TimeSpan.FromSeconds(19)), "2,000 of the refill at 10 s are unclaimed; a request without claimant claims nothing");
        counter.Reserve(Ptu, 2_000, 0, 0, Start.AddSeconds(1)).RetryAfter.Should().Be(TimeSpan.FromSeconds(9), "it fits the refill at 10 s");
        counter.Reserve(Ptu, 10_000, 0, 0, claimant: 43, Start.AddSeconds(1)).RetryAfter.Should().Be(TimeSpan.FromSeconds(19), "the refill at 20 s is unclaimed");
    }

    [Fact]
    public void Claims_are_bounded_by_the_horizon()
    {
        // At most 4 refills are looked at: 10, 20, 30 and 40 s, each claimed whole.
        var counter = SpentUntil10s();
        for (var claimant = 1; claimant <= 4; claimant++)
        {
            counter.Reserve(Ptu, 10_000, 0, 0, claimant, Start).RetryAfter.Should().Be(TimeSpan.FromSeconds(10 * claimant));
        }

        var fifth = counter.Reserve(Ptu, 1_001, 0, 0, claimant: 5, Start);
        (fifth.Status, fifth.HoldsClaim, fifth.RetryAfter).Should().Be((BackendReservationStatus.Refused, false, TimeSpan.FromSeconds(50)), "the moment after the last refill looked at");
        Reserve(counter, Start.AddSeconds(50), 10_000).Should().Be(BackendReservationStatus.Granted, "nothing was claimed at 50 s");

        // Refills 30 s apart: only those within 60 s (30 and 60 s) are looked at.
        var longWindows = new SharedReservationCounter();
        longWindows.Correct(longWindows.Reserve(Ptu, 1_000, 0, 0, Start), Tokens(0, 10_000, TimeSpan.FromSeconds(30), Start, Start), Start);
        longWindows.Reserve(Ptu, 10_000, 0, 0, claimant: 1, Start).RetryAfter.Should().Be(TimeSpan.FromSeconds(30));
        longWindows.Reserve(Ptu, 10_000, 0, 0, claimant: 2, Start).RetryAfter.Should().Be(TimeSpan.FromSeconds(60));
        var beyond = longWindows.Reserve(Ptu, 10_000, 0, 0, claimant: 3, Start);
        (beyond.HoldsClaim, beyond.RetryAfter).Should().Be((false, TimeSpan.FromSeconds(90)));
    }

    [Fact]
    public void A_claim_counts_in_the_refill_nearest_its_moment()
    {
        // A later answer moves the window's end by 20 ms (10.02 s): the claim made for the refill at 10 s is still that
        // refill's, not the window's before, so the same refill is not claimed twice over.
        var counter = SpentUntil10s();
        counter.Reserve(Ptu, 10_000, 0, 0, claimant: 1, Start.AddSeconds(1)).RetryAfter.Should().Be(TimeSpan.FromSeconds(9));
        counter.Correct(counter.Reserve(Ptu, 0, 0, 0, Start.AddSeconds(1)), Tokens(0, 10_000, TimeSpan.FromMilliseconds(9_020), Start.AddSeconds(1), Start.AddSeconds(1)), Start.AddSeconds(1));

        var second = counter.Reserve(Ptu, 10_000, 0, 0, claimant: 2, Start.AddSeconds(1));
        (second.HoldsClaim, second.RetryAfter).Should().Be((true, TimeSpan.FromMilliseconds(19_020)), "the refill at 10.02 s is the one claimed at 10 s");
        Reserve(counter, Start.AddMilliseconds(10_020), 1).Should().Be(BackendReservationStatus.Refused, "the refill is claimed whole");
        counter.Reserve(Ptu, 10_000, 0, 0, claimant: 1, Start.AddMilliseconds(10_020)).Status.Should().Be(BackendReservationStatus.Granted);
    }

    [Fact]
    public void A_claim_given_back_frees_its_room()
    {
        var counter = SpentUntil10s();
        counter.Reserve(Ptu, 6_000, 0, 0, claimant: 42, Start.AddSeconds(1)).HoldsClaim.Should().BeTrue();
        counter.Reserve(Ptu, 6_000, 0, 0, claimant: 43, Start.AddSeconds(1)).RetryAfter.Should().Be(TimeSpan.FromSeconds(19));

        counter.Unclaim(Ptu, 42, Start.AddSeconds(2));

        counter.Reserve(Ptu, 10_000, 0, 0, claimant: 44, Start.AddSeconds(2)).RetryAfter.Should().Be(TimeSpan.FromSeconds(8), "the refill at 10 s is unclaimed again");
        counter.Reserve(Ptu, 6_000, 0, 0, claimant: 42, Start.AddSeconds(10)).Status.Should().Be(BackendReservationStatus.Refused, "its claim is gone");
    }

    [Fact]
    public void A_claim_of_a_refill_whose_moment_moved_by_milliseconds_joins_its_entry()
    {
        // Every answer moves the window's end by a millisecond: each claim of the refill at 10 s is made at a moment of its own.
        var counter = SpentUntil10s();
        var now = Start.AddSeconds(1);
        for (var claimant = 1; claimant <= 20; claimant++)
        {
            MoveWindowEnd(counter, now, TimeSpan.FromMilliseconds(9_000 + claimant));
            var claim = counter.Reserve(Ptu, 100, 0, 0, claimant, now);
            (claim.HoldsClaim, claim.RetryAfter).Should().Be((true, TimeSpan.FromMilliseconds(9_000 + claimant)), "claimant {0} fits the refill", claimant);
        }

        counter.ClaimMoments(Ptu).Should().Be(1, "one entry per refill: at its first claim's moment, lasting its latest claimant's grace");
        var refill = Start.AddMilliseconds(10_020);
        Reserve(counter, refill, 8_001).Should().Be(BackendReservationStatus.Refused, "2,000 of the refill are claimed");
        for (var claimant = 1; claimant <= 20; claimant++)
        {
            counter.Reserve(Ptu, 100, 0, 0, claimant, refill).Status.Should().Be(BackendReservationStatus.Granted, "claimant {0} redeems its claim", claimant);
        }

        Reserve(counter, refill, 8_000).Should().Be(BackendReservationStatus.Granted, "the room no claim holds");
        Reserve(counter, refill, 1).Should().Be(BackendReservationStatus.Refused);
        counter.ClaimMoments(Ptu).Should().Be(0);
    }

    [Fact]
    public void A_claimant_told_a_moved_moment_redeems_from_its_refills_entry()
    {
        var counter = SpentUntil10s();
        counter.Reserve(Ptu, 5_000, 0, 0, claimant: 1, Start.AddSeconds(1)).RetryAfter.Should().Be(TimeSpan.FromSeconds(9));
        MoveWindowEnd(counter, Start.AddSeconds(1), TimeSpan.FromMilliseconds(9_020));
        var second = counter.Reserve(Ptu, 5_000, 0, 0, claimant: 2, Start.AddSeconds(1));
        (second.HoldsClaim, second.RetryAfter).Should().Be((true, TimeSpan.FromMilliseconds(9_020)));
        counter.ClaimMoments(Ptu).Should().Be(1, "the second claim joined the refill's entry (at 10 s)");

        counter.Reserve(Ptu, 5_000, 0, 0, claimant: 2, Start.AddSeconds(9.5)).RetryAfter.Should().Be(TimeSpan.FromMilliseconds(520), "early: the time left to the moment it was told");
        var refill = Start.AddMilliseconds(10_020);
        Reserve(counter, refill, 1).Should().Be(BackendReservationStatus.Refused, "the refill is claimed whole");
        counter.Reserve(Ptu, 5_000, 0, 0, claimant: 2, refill).Status.Should().Be(BackendReservationStatus.Granted, "told 10.02 s, it redeems from the entry at 10 s");
        counter.Reserve(Ptu, 5_000, 0, 0, claimant: 1, refill).Status.Should().Be(BackendReservationStatus.Granted);
        Reserve(counter, refill, 1).Should().Be(BackendReservationStatus.Refused, "the window is spent");
    }

    [Fact]
    public void A_claim_given_back_after_its_refill_moved_frees_its_room()
    {
        var counter = SpentUntil10s();
        counter.Reserve(Ptu, 5_000, 0, 0, claimant: 1, Start.AddSeconds(1)).HoldsClaim.Should().BeTrue();
        MoveWindowEnd(counter, Start.AddSeconds(1), TimeSpan.FromMilliseconds(9_020));
        counter.Reserve(Ptu, 5_000, 0, 0, claimant: 2, Start.AddSeconds(1)).HoldsClaim.Should().BeTrue();

        counter.Unclaim(Ptu, 2, Start.AddSeconds(2));

        counter.Reserve(Ptu, 5_000, 0, 0, claimant: 3, Start.AddSeconds(2)).RetryAfter.Should().Be(TimeSpan.FromMilliseconds(8_020), "the refill at 10.02 s has room again");
        counter.ClaimMoments(Ptu).Should().Be(1);
    }

    [Fact]
    public void A_budget_keeps_at_most_16_claim_moments_and_a_request_past_them_is_told_its_refill_unclaimed()
    {
        // Windows of 100 ms, each claimed whole within the 2 s grace of the claims before: a moment per refill, 16 alive.
        var counter = new SharedReservationCounter();
        counter.Correct(counter.Reserve(Ptu, 1_000, 0, 0, Start), Tokens(9_000, 10_000, TimeSpan.FromMilliseconds(100), Start, Start), Start);
        for (var claimant = 1; claimant <= SharedReservationCounter.MaxClaimMoments; claimant++)
        {
            var claim = counter.Reserve(Ptu, 10_000, 0, 0, claimant, Start.AddMilliseconds((claimant * 100) - 50));
            (claim.HoldsClaim, claim.RetryAfter).Should().Be((true, TimeSpan.FromMilliseconds(50)), "claimant {0} claims the next refill", claimant);
        }

        counter.ClaimMoments(Ptu).Should().Be(SharedReservationCounter.MaxClaimMoments);
        var now = Start.AddMilliseconds(1_650);
        var past = counter.Reserve(Ptu, 10_000, 0, 0, claimant: 17, now);
        (past.Status, past.HoldsClaim, past.RetryAfter).Should().Be((BackendReservationStatus.Refused, false, TimeSpan.FromMilliseconds(50)), "past 16 moments, the refill is named, unclaimed");
        counter.ClaimMoments(Ptu).Should().Be(SharedReservationCounter.MaxClaimMoments, "the 16 claims stay");
        counter.Reserve(Ptu, 10_000, 0, 0, claimant: 16, now).Status.Should().Be(BackendReservationStatus.Granted, "its claim stayed: it redeems it");
    }

    private static void MoveWindowEnd(SharedReservationCounter counter, DateTimeOffset now, TimeSpan resetIn)
        => counter.Correct(counter.Reserve(Ptu, 0, 0, 0, now), Tokens(0, 10_000, resetIn, now, now), now);

    private static SharedReservationCounter SpentUntil10s()
    {
        var counter = new SharedReservationCounter();
        counter.Correct(counter.Reserve(Ptu, 1_000, 0, 0, Start), Tokens(1_000, 10_000, TimeSpan.FromSeconds(10), Start, Start), Start);
        return counter;
    }

    private static BackendReservationStatus Reserve(SharedReservationCounter counter, DateTimeOffset now, long cost) => counter.Reserve(Ptu, cost, 0, 0, now).Status;

    private static BackendReservationReport Requests(long remaining, long limit, TimeSpan reset, DateTimeOffset sentAt, DateTimeOffset receivedAt)
        => new(null, null, TimeSpan.Zero, remaining, limit, reset, sentAt, receivedAt);

    private static BackendReservationReport Tokens(long remaining, long limit, TimeSpan reset, DateTimeOffset sentAt, DateTimeOffset receivedAt)
        => new(remaining, limit, reset, null, null, TimeSpan.Zero, sentAt, receivedAt);
}
