using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Polly.PriorityRouting.Redis.Tests.Support;
using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis.Tests;

/// <summary>
/// Shared claims on a real Redis (<see cref="ReservationScripts.Reserve"/>): a refused foreground request claims the
/// soonest refill where it fits, and its claimant redeems it there through any replica. The tests named as the steps of
/// the rule are the simulation's counter's too (SharedReservationCounterTests, same names).
/// </summary>
/// <remarks>
/// No test waits for a refill: each steps the budget's moments (its windows' ends, its claims and its claimants'
/// records) back on the server by hand, as if that much time had passed. A test that redeems a claim gives its
/// replicas a grace of a minute, so that no pause of the machine between the step and the next call can end it; the
/// grace's own end is stepped past, never waited for.
/// </remarks>
public sealed class RedisClaimTests : IClassFixture<RedisServerFixture>
{
    internal static readonly BackendStateKey Key = new("ptu@http://ptu.example", "gpt-4o");

    private static readonly TimeSpan Flushed = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan LongGrace = TimeSpan.FromMinutes(1);

    private readonly RedisServerFixture _redis;

    public RedisClaimTests(RedisServerFixture redis) => _redis = redis;

    [Fact]
    public async Task A_refused_foreground_request_claims_the_soonest_refill_where_it_fits()
    {
        await using var setup = await SpentAsync(_redis.Configuration);

        var first = await setup.ReserveAsync(4_000, claimant: 1);
        var second = await setup.ReserveAsync(7_000, claimant: 2);
        var third = await setup.ReserveAsync(6_000, claimant: 3);

        first.HoldsClaim.Should().BeTrue();
        first.Status.Should().Be(BackendReservationStatus.Refused);
        first.RetryAfter.Should().BeGreaterThan(TimeSpan.FromSeconds(20)).And.BeLessThanOrEqualTo(TimeSpan.FromSeconds(30), "the next refill");
        second.HoldsClaim.Should().BeTrue();
        second.RetryAfter.Should().BeGreaterThan(TimeSpan.FromSeconds(50)).And.BeLessThanOrEqualTo(TimeSpan.FromSeconds(60), "4,000 + 7,000 exceed the 10,000 of the next refill: the one after");
        third.HoldsClaim.Should().BeTrue();
        third.RetryAfter.Should().BeLessThanOrEqualTo(first.RetryAfter, "4,000 + 6,000 fit the next refill");
        (await setup.ClaimsAsync()).Should().Equal(
            new Dictionary<long, string> { [setup.Refill] = "10000:0", [setup.Refill + 30_000] = "7000:0" },
            "the tokens set aside per refill; the requests budget is unknown and claims nothing");
    }

    [Fact]
    public async Task A_claim_on_a_continuous_budget_waits_behind_the_claims_before_it_and_newcomers_never_take_its_room()
    {
        await using var setup = await FlowingAsync(_redis.Configuration);
        var first = await setup.ReserveAsync(5_500, claimant: 1);
        var second = await setup.ReserveAsync(300, claimant: 2);

        first.HoldsClaim.Should().BeTrue();
        first.RetryAfter.Should().BeCloseTo(TimeSpan.FromSeconds(26), TimeSpan.FromSeconds(1), "500 must come back first");
        second.HoldsClaim.Should().BeTrue();
        second.RetryAfter.Should().BeCloseTo(TimeSpan.FromSeconds(41.6), TimeSpan.FromSeconds(1), "behind the first claim: 800 must come back");
        (await setup.ReserveAsync(100, claimant: 0)).Status.Should().Be(BackendReservationStatus.Refused);

        await setup.StepAsync(first.RetryAfter + Claiming.Due, 1, 2);
        (await setup.ReserveAsync(100, claimant: 0)).Status.Should().Be(BackendReservationStatus.Refused, "what came back is the first claimant's");
        (await setup.ReserveAsync(5_500, claimant: 1)).Status.Should().Be(BackendReservationStatus.Granted, "its room was counted when it claimed");
        (await setup.ReserveAsync(100, claimant: 0)).Status.Should().Be(BackendReservationStatus.Refused, "what comes back next is the second claimant's");
        var early = await setup.ReserveAsync(300, claimant: 2);
        early.HoldsClaim.Should().BeTrue();
        early.RetryAfter.Should().BeCloseTo(TimeSpan.FromSeconds(15.6), TimeSpan.FromSeconds(1));

        await setup.StepAsync(early.RetryAfter + Claiming.Due, 2);
        (await setup.ReserveAsync(300, claimant: 2)).Status.Should().Be(BackendReservationStatus.Granted);
        (await setup.ReserveAsync(100, claimant: 0)).Status.Should().Be(BackendReservationStatus.Refused, "the 10,000 are spent");
        await setup.StepAsync(TimeSpan.FromSeconds(10.4));
        (await setup.ReserveAsync(100, claimant: 0)).Status.Should().Be(BackendReservationStatus.Granted, "200 came back since");
        (await setup.Database.SortedSetLengthAsync(setup.FlowClaimsKey)).Should().Be(0, "both claims were redeemed");
    }

    [Fact]
    public async Task A_claim_on_a_continuous_budget_given_back_or_expired_frees_its_room()
    {
        await using var setup = await FlowingAsync(_redis.Configuration);
        (await setup.ReserveAsync(5_500, claimant: 1)).HoldsClaim.Should().BeTrue();
        var flushed = setup.Replica.RedisStore.Reservations!.Flushed;
        setup.Store.ReleaseClaim(setup.Key, 1);
        await Eventually.HoldsAsync(() => setup.Replica.RedisStore.Reservations!.Flushed > flushed, Flushed, "the claim given back reaches Redis");
        (await setup.ReserveAsync(4_700, claimant: 0)).Status.Should().Be(BackendReservationStatus.Granted, "the claim given back left 5,000 spent");

        var claim = await setup.ReserveAsync(500, claimant: 2);
        claim.HoldsClaim.Should().BeTrue();
        claim.RetryAfter.Should().BeCloseTo(TimeSpan.FromSeconds(10.4), TimeSpan.FromSeconds(1));

        // Its grace ends unredeemed: 10,200 less what came back in 13.4 s (about 258) less its own 500.
        await setup.StepAsync(claim.RetryAfter + RedisReservations.Grace + TimeSpan.FromSeconds(1), 2);
        (await setup.ReserveAsync(400, claimant: 0)).Status.Should().Be(BackendReservationStatus.Granted);
        (await setup.Database.SortedSetLengthAsync(setup.FlowClaimsKey)).Should().Be(0);
    }

    [Fact]
    public async Task A_newcomer_takes_the_room_a_claim_given_back_left_while_every_later_claim_still_has_its_room_at_its_moment()
    {
        await using var setup = await FlowingAsync(_redis.Configuration);
        (await setup.ReserveAsync(5_500, claimant: 1)).HoldsClaim.Should().BeTrue();
        var second = await setup.ReserveAsync(300, claimant: 2);
        second.RetryAfter.Should().BeCloseTo(TimeSpan.FromSeconds(41.6), TimeSpan.FromSeconds(1), "behind the first claim");
        var flushed = setup.Replica.RedisStore.Reservations!.Flushed;
        setup.Store.ReleaseClaim(setup.Key, 1);
        await Eventually.HoldsAsync(() => setup.Replica.RedisStore.Reservations!.Flushed > flushed, Flushed, "the claim given back reaches Redis");

        // 5,300 counted (5,000 spent, the second claim's 300): 4,900 more is over the 10,000, but the bucket holds 5,000
        // now, and 800 come back by the second claim's moment, which needs 300 of them.
        (await setup.ReserveAsync(4_900, claimant: 0)).Status.Should().Be(BackendReservationStatus.Granted);
        (await setup.ReserveAsync(200, claimant: 0)).Status.Should().Be(BackendReservationStatus.Refused, "100 are left now");
        await setup.StepAsync(second.RetryAfter + Claiming.Due, 2);
        (await setup.ReserveAsync(300, claimant: 2)).Status.Should().Be(BackendReservationStatus.Granted, "its room came back by its moment");
    }

    [Fact]
    public async Task A_gap_is_read_only_on_the_budgets_whose_count_refuses_a_request_of_no_tokens_is_never_held_back_by_the_tokens_claims()
    {
        // Both budgets flow. Tokens: 11,000 spent beyond a claim of 5,000 due in 50 s (answers in flight): no gap. Requests:
        // 100 a minute, 98 spent beyond two claims due in 50 s: the count refuses one more, but 2 are free now and the
        // claims find 85 by their moment. A request of no tokens takes nothing from the tokens budget, whose count never
        // judges it (the simulation's counter keeps one budget per key: its token budget does not judge it either).
        await using var setup = await FlowingAsync(_redis.Configuration);
        setup.FrozenAt = null;
        var now = await setup.ServerMillisecondsAsync();
        await setup.Database.HashSetAsync(setup.BudgetKey, [
            new("tx", "16000"), new("th", "5000"), new("ty", now), new("rl", "100"), new("rk", "1"), new("rx", "100"),
            new("rh", "2"), new("ry", now), new("rz", (100.0 / 60_000).ToString("R", CultureInfo.InvariantCulture))]);
        await setup.Database.SortedSetAddAsync(setup.FlowClaimsKey, [
            new SortedSetEntry("00000000000000a1:5000:1", now + 50_000), new SortedSetEntry("00000000000000a2:0:1", now + 50_000)]);
        await setup.Database.KeyExpireAsync(setup.FlowClaimsKey, TimeSpan.FromMinutes(3));

        (await setup.ReserveAsync(1, claimant: 0)).Status.Should().Be(BackendReservationStatus.Refused, "the tokens budget has no room");
        (await setup.ReserveAsync(0, claimant: 0)).Status.Should().Be(BackendReservationStatus.Granted, "the requests budget's gap holds it");
    }

    [Fact]
    public async Task A_gap_holds_no_room_for_a_peers_member_that_no_claimant_of_this_store_can_redeem()
    {
        // 5,300 counted: 5,000 spent and a claim of 300 due in 41.6 s (the claim of 5,500 ahead of it given back). Beside it
        // members no claimant can redeem (a claimant's member names its 16 hex digits), which the sweep frees nothing for
        // either; and one of 16 hex digits beyond the limit (a claim made before the limit was lowered), which may be redeemed.
        await using var setup = await FlowingAsync(_redis.Configuration);
        setup.FrozenAt = null;
        var now = await setup.ServerMillisecondsAsync();
        await setup.Database.HashSetAsync(setup.BudgetKey, [new("tx", "5300"), new("th", "300"), new("ty", now)]);
        await setup.Database.SortedSetAddAsync(setup.FlowClaimsKey, [
            new SortedSetEntry("00000000000000a2:300:0", now + 41_600), new SortedSetEntry("abc:9000:0", now + 30_000),
            new SortedSetEntry($"{new string('f', 40)}:9000:0", now + 30_000), new SortedSetEntry("00000000000000a3:9000", now + 30_000)]);
        await setup.Database.KeyExpireAsync(setup.FlowClaimsKey, TimeSpan.FromMinutes(3));

        (await setup.ReserveAsync(4_900, claimant: 0)).Status.Should().Be(BackendReservationStatus.Granted, "the bucket holds 5,000 now, and the claim of 300 finds 800 by its moment");
        (await setup.ReserveAsync(200, claimant: 0)).Status.Should().Be(BackendReservationStatus.Refused, "100 are left now");

        await setup.Database.SortedSetAddAsync(setup.FlowClaimsKey, "00000000000000a4:20000:0", now + 50_000);
        (await setup.ReserveAsync(50, claimant: 0)).Status.Should().Be(BackendReservationStatus.Refused, "a claim beyond the limit holds all there is");
    }

    [Fact]
    public async Task A_flow_whose_spend_decayed_below_what_its_claims_hold_never_grants_their_room()
    {
        // A peer's state: 1,000 counted but 9,000 claimed (due in 5 s), as a flow that decayed past its claims leaves it
        // (a claimant late in its grace, a release after its tokens came back). The bucket is full: 10,000 now, about
        // 10,096 by the claim's moment (never more than the limit), 9,000 of them the claim's.
        await using var setup = await FlowingAsync(_redis.Configuration);
        setup.FrozenAt = null;
        var now = await setup.ServerMillisecondsAsync();
        await setup.Database.HashSetAsync(setup.BudgetKey, [new("tx", "1000"), new("th", "9000"), new("ty", now)]);
        await setup.Database.SortedSetAddAsync(setup.FlowClaimsKey, "00000000000000b1:9000:0", now + 5_000);
        await setup.Database.KeyExpireAsync(setup.FlowClaimsKey, TimeSpan.FromMinutes(3));

        (await setup.ReserveAsync(2_000, claimant: 0)).Status.Should().Be(BackendReservationStatus.Refused, "1,000 are free of the claim");
        (await setup.ReserveAsync(900, claimant: 0)).Status.Should().Be(BackendReservationStatus.Granted);
    }

    [Fact]
    public async Task A_gap_in_a_queue_of_more_than_512_claims_is_not_read_the_counts_answer_stands()
    {
        // As the simulation's counter has it (same name): 5,000 spent and 513 claims of 1 from 26 s on, as if the
        // claim of 5,500 ahead of them had been given back.
        await using var setup = await FlowingAsync(_redis.Configuration);
        setup.FrozenAt = null;
        var now = await setup.ServerMillisecondsAsync();
        await setup.Database.HashSetAsync(setup.BudgetKey, [new("tx", "5513"), new("ty", now), new("th", "513")]);
        await setup.Database.SortedSetAddAsync(setup.FlowClaimsKey, [.. Enumerable.Range(1, 513).Select(i => new SortedSetEntry($"{i:x16}:1:0", now + 26_000 + (i * 52)))]);
        await setup.Database.KeyExpireAsync(setup.FlowClaimsKey, TimeSpan.FromMinutes(3));

        (await setup.ReserveAsync(4_900, claimant: 0)).Status.Should().Be(BackendReservationStatus.Refused, "513 claims queued: the count's answer");
        await setup.Database.SortedSetRemoveAsync(setup.FlowClaimsKey, $"{513:x16}:1:0");
        var spent = (double)await setup.Database.HashGetAsync(setup.BudgetKey, "tx");
        await setup.Database.HashSetAsync(setup.BudgetKey, [new("tx", (spent - 1).ToString("R", CultureInfo.InvariantCulture)), new("th", "512")]);
        (await setup.ReserveAsync(4_900, claimant: 0)).Status.Should().Be(BackendReservationStatus.Granted, "512 claims queued: their gap is read");
    }

    [Fact]
    public async Task Claimed_room_is_left_free_for_its_claimant()
    {
        await using var setup = await SpentAsync(_redis.Configuration, grace: LongGrace);
        (await setup.ReserveAsync(6_000, claimant: 1)).HoldsClaim.Should().BeTrue();

        await setup.StepToClaimAsync(claimant: 1);

        var newcomer = await setup.ReserveAsync(4_001, claimant: 2);
        newcomer.HoldsClaim.Should().BeTrue("6,000 of the refilled 10,000 are claimed: the newcomer claims the next refill");
        newcomer.RetryAfter.Should().BeGreaterThan(TimeSpan.FromSeconds(20));
        (await setup.ReserveAsync(4_000, claimant: 0)).Status.Should().Be(BackendReservationStatus.Granted, "the room no claim holds");
        (await setup.ReserveAsync(6_000, claimant: 1)).Status.Should().Be(BackendReservationStatus.Granted, "its claimant redeems the claim");
        (await setup.ReserveAsync(1, claimant: 0)).Status.Should().Be(BackendReservationStatus.Refused, "the window is spent");
    }

    [Fact]
    public async Task A_claimant_that_comes_back_early_is_told_the_time_left_to_its_claim()
    {
        await using var setup = await SpentAsync(_redis.Configuration);
        var claim = await setup.ReserveAsync(6_000, claimant: 1);

        var early = await setup.ReserveAsync(6_000, claimant: 1);
        await setup.StepAsync(TimeSpan.FromSeconds(10), 1);
        var later = await setup.ReserveAsync(6_000, claimant: 1);

        early.HoldsClaim.Should().BeTrue();
        early.RetryAfter.Should().BeLessThanOrEqualTo(claim.RetryAfter).And.BeGreaterThan(TimeSpan.FromSeconds(20));
        later.HoldsClaim.Should().BeTrue();
        later.RetryAfter.Should().BeGreaterThan(TimeSpan.FromSeconds(10)).And.BeLessThanOrEqualTo(TimeSpan.FromSeconds(20), "10 s of the wait passed");
        (await setup.ClaimsAsync()).Values.Should().Equal(["6000:0"], "the claim stays, once");
    }

    [Fact]
    public async Task Claimed_room_no_claimant_redeemed_within_the_grace_is_free_again()
    {
        await using var setup = await SpentAsync(_redis.Configuration);
        (await setup.ReserveAsync(6_000, claimant: 1)).HoldsClaim.Should().BeTrue();

        // The claim's moment and its whole grace pass.
        await setup.StepToClaimAsync(claimant: 1, beyond: RedisReservations.Grace + TimeSpan.FromSeconds(1));

        (await setup.ReserveAsync(10_000, claimant: 0)).Status.Should().Be(BackendReservationStatus.Granted, "the unredeemed claim holds nothing any more");
        (await setup.Database.KeyExistsAsync(setup.ClaimsKey)).Should().BeFalse("a claims hash left empty is deleted");
        var late = await setup.ReserveAsync(6_000, claimant: 1);
        late.HoldsClaim.Should().BeTrue("back after the grace, the claimant is a newcomer: it claims the next refill");
        late.RetryAfter.Should().BeGreaterThan(TimeSpan.FromSeconds(20));
    }

    [Fact]
    public async Task A_background_request_never_claims_and_leaves_claimed_room_free()
    {
        await using var setup = await SpentAsync(_redis.Configuration, grace: LongGrace);
        (await setup.ReserveAsync(6_000, claimant: 1)).HoldsClaim.Should().BeTrue();

        var background = await setup.ReserveAsync(1_000, claimant: 7, headroom: 0.2);
        background.Status.Should().Be(BackendReservationStatus.Refused);
        background.HoldsClaim.Should().BeFalse("a background request never claims, whatever claimant it names");
        (await setup.ClaimsAsync()).Values.Should().Equal(["6000:0"]);
        (await setup.Database.KeyExistsAsync(RedisStoreLayout.ClaimantKeyOf(setup.BudgetKey, 7))).Should().BeFalse();

        await setup.StepToClaimAsync(claimant: 1);

        var tooLarge = await setup.ReserveAsync(2_001, claimant: 0, headroom: 0.2);
        tooLarge.Status.Should().Be(BackendReservationStatus.Refused, "of the 10,000 refilled, 6,000 are claimed and 2,000 the headroom");
        tooLarge.HoldsClaim.Should().BeFalse();
        tooLarge.RetryAfter.Should().BeGreaterThan(TimeSpan.FromSeconds(20)).And.BeLessThanOrEqualTo(TimeSpan.FromSeconds(30), "the next refill, where it fits");
        (await setup.ReserveAsync(2_000, claimant: 0, headroom: 0.2)).Status.Should().Be(BackendReservationStatus.Granted);
        (await setup.ReserveAsync(6_000, claimant: 1)).Status.Should().Be(BackendReservationStatus.Granted, "the claimant finds its room");
    }

    [Fact]
    public async Task A_claim_fits_the_windows_of_both_tokens_and_requests()
    {
        // Tokens: 10,000 per 30 s, spent. Requests: 2 per 45 s, spent. The tokens refill first, but no request is free
        // then: the soonest refill where both fit is the requests'.
        await using var setup = await SpentAsync(_redis.Configuration, requests: (2, TimeSpan.FromSeconds(45)));
        var requestsRefill = (long)await setup.Database.HashGetAsync(setup.BudgetKey, "re");

        var first = await setup.ReserveAsync(1_000, claimant: 1);
        var second = await setup.ReserveAsync(1_000, claimant: 2);
        var third = await setup.ReserveAsync(1_000, claimant: 3);

        first.HoldsClaim.Should().BeTrue();
        first.RetryAfter.Should().BeGreaterThan(TimeSpan.FromSeconds(35)).And.BeLessThanOrEqualTo(TimeSpan.FromSeconds(45), "the requests' refill");
        second.HoldsClaim.Should().BeTrue();
        second.RetryAfter.Should().BeLessThanOrEqualTo(first.RetryAfter, "the second of the 2 requests fits there too");
        third.HoldsClaim.Should().BeFalse("no refill within the horizon has a request free: at 60 s the requests' window is the one claimed full");
        third.RetryAfter.Should().BeGreaterThan(TimeSpan.FromSeconds(80)).And.BeLessThanOrEqualTo(TimeSpan.FromSeconds(90), "after the last refill looked at (60 s) and its window");
        (await setup.ClaimsAsync()).Should().Equal(new Dictionary<long, string> { [requestsRefill] = "2000:2" });
    }

    [Fact]
    public async Task A_refusal_names_the_soonest_refill_with_unclaimed_room()
    {
        await using var setup = await SpentAsync(_redis.Configuration);
        (await setup.ReserveAsync(10_000, claimant: 1)).HoldsClaim.Should().BeTrue();

        var unclaiming = await setup.ReserveAsync(1, claimant: 0);
        var background = await setup.ReserveAsync(1, claimant: 0, headroom: 0.2);

        foreach (var refusal in new[] { unclaiming, background })
        {
            refusal.Status.Should().Be(BackendReservationStatus.Refused);
            refusal.HoldsClaim.Should().BeFalse();
            refusal.RetryAfter.Should().BeGreaterThan(TimeSpan.FromSeconds(50)).And.BeLessThanOrEqualTo(TimeSpan.FromSeconds(60), "the next refill is claimed whole: the one after");
        }

        (await setup.ClaimsAsync()).Values.Should().Equal(["10000:0"]);
    }

    [Fact]
    public async Task Claims_are_bounded_by_the_horizon()
    {
        // Windows of 12 s: five refills lie within the horizon of 60 s, four are looked at.
        await using var shortWindows = await SpentAsync(_redis.Configuration, tokensWindow: TimeSpan.FromSeconds(12));
        var claims = new List<BackendReservation>();
        for (var claimant = 1; claimant <= RedisReservations.Refills; claimant++)
        {
            claims.Add(await shortWindows.ReserveAsync(10_000, claimant));
        }

        var beyond = await shortWindows.ReserveAsync(10_000, claimant: 99);

        claims.Should().OnlyContain(claim => claim.HoldsClaim);
        claims.Select(claim => claim.RetryAfter).Should().BeInAscendingOrder();
        (await shortWindows.ClaimsAsync()).Keys.Should().Equal(Enumerable.Range(0, RedisReservations.Refills).Select(i => shortWindows.Refill + (i * 12_000L)));
        beyond.HoldsClaim.Should().BeFalse();
        beyond.RetryAfter.Should().BeGreaterThan(claims[^1].RetryAfter, "the moment after the last refill looked at");
        (await shortWindows.Database.KeyExistsAsync(RedisStoreLayout.ClaimantKeyOf(shortWindows.BudgetKey, 99))).Should().BeFalse();

        // Windows of 30 s: two refills lie within the horizon.
        await using var longWindows = await SpentAsync(_redis.Configuration, deployment: "gpt-4o-long");
        (await longWindows.ReserveAsync(10_000, claimant: 1)).HoldsClaim.Should().BeTrue();
        (await longWindows.ReserveAsync(10_000, claimant: 2)).HoldsClaim.Should().BeTrue();
        var late = await longWindows.ReserveAsync(10_000, claimant: 3);
        late.HoldsClaim.Should().BeFalse();
        late.RetryAfter.Should().BeGreaterThan(TimeSpan.FromSeconds(80)).And.BeLessThanOrEqualTo(TimeSpan.FromSeconds(90));
        (await longWindows.ClaimsAsync()).Should().HaveCount(2);
    }

    [Fact]
    public async Task A_claim_counts_in_the_refill_nearest_its_moment()
    {
        // Tokens (10,000) and requests (2) both refilled every 20 s, both spent, their windows ending at one moment.
        await using var setup = await SpentAsync(_redis.Configuration, grace: LongGrace, tokensWindow: TimeSpan.FromSeconds(20), requests: (2, TimeSpan.FromSeconds(20)));
        var refill = setup.Refill;
        ((long)await setup.Database.HashGetAsync(setup.BudgetKey, "re")).Should().Be(refill);
        (await setup.ReserveAsync(10_000, claimant: 1)).HoldsClaim.Should().BeTrue();

        // A later answer moves both windows' ends by 20 ms: the claim made for the refill at `refill` is still that
        // refill's, not the window's before, so the same refill is not claimed twice over.
        await setup.Database.HashSetAsync(setup.BudgetKey, [new("te", refill + 20), new("re", refill + 20)]);
        var second = await setup.ReserveAsync(10_000, claimant: 2);

        second.HoldsClaim.Should().BeTrue();
        second.RetryAfter.Should().BeGreaterThan(TimeSpan.FromSeconds(20), "the refill 20 ms after the claimed moment is the one claimed");
        (await setup.ClaimsAsync()).Should().Equal(new Dictionary<long, string> { [refill] = "10000:1", [refill + 20_020] = "10000:1" });

        // At the moved refill, the current window leaves the claim of its refill free, in tokens and in requests.
        await setup.StepToClaimAsync(claimant: 1, beyond: TimeSpan.FromMilliseconds(20));
        (await setup.ReserveAsync(1, claimant: 0)).Status.Should().Be(BackendReservationStatus.Refused, "the refill's tokens are claimed whole");
        (await setup.ReserveAsync(0, claimant: 0)).Status.Should().Be(BackendReservationStatus.Granted, "one of the refill's 2 requests is claimed, one is free");
        (await setup.ReserveAsync(10_000, claimant: 1)).Status.Should().Be(BackendReservationStatus.Granted, "its claimant redeems it");
        (await setup.ReserveAsync(0, claimant: 0)).Status.Should().Be(BackendReservationStatus.Refused, "both requests of the window are spent");
    }

    [Fact]
    public async Task A_claim_given_back_frees_its_room()
    {
        await using var setup = await SpentAsync(_redis.Configuration, grace: LongGrace);
        (await setup.ReserveAsync(6_000, claimant: 1)).HoldsClaim.Should().BeTrue();
        (await setup.ReserveAsync(6_000, claimant: 2)).RetryAfter.Should().BeGreaterThan(TimeSpan.FromSeconds(50), "the refill after the next one");

        // Through the store the strategy holds (RedisReservingStateStore), off the caller's path.
        var flushed = setup.Replica.RedisStore.Reservations!.Flushed;
        setup.Store.ReleaseClaim(setup.Key, 1);
        await Eventually.HoldsAsync(() => setup.Replica.RedisStore.Reservations!.Flushed > flushed, Flushed, "the claim given back reaches Redis");

        (await setup.Database.KeyExistsAsync(RedisStoreLayout.ClaimantKeyOf(setup.BudgetKey, 1))).Should().BeFalse("its record is gone");
        var third = await setup.ReserveAsync(10_000, claimant: 3);
        third.HoldsClaim.Should().BeTrue();
        third.RetryAfter.Should().BeLessThanOrEqualTo(TimeSpan.FromSeconds(30), "the next refill is unclaimed again");
        (await setup.ClaimsAsync()).Should().Equal(new Dictionary<long, string> { [setup.Refill] = "10000:0", [setup.Refill + 30_000] = "6000:0" });

        await setup.StepToClaimAsync(claimant: 3);
        (await setup.ReserveAsync(6_000, claimant: 1)).Status.Should().Be(BackendReservationStatus.Refused, "its claim is gone");
    }

    [Fact]
    public async Task A_claim_of_a_refill_whose_moment_moved_by_milliseconds_joins_its_entry()
    {
        // Every answer moves the window's end by a millisecond: each claim of the next refill is made at a moment of its own.
        await using var setup = await SpentAsync(_redis.Configuration, grace: LongGrace);
        var claimants = Enumerable.Range(1, 20).Select(claimant => (long)claimant).ToArray();
        foreach (var claimant in claimants)
        {
            await setup.Database.HashSetAsync(setup.BudgetKey, "te", setup.Refill + claimant);
            (await setup.ReserveAsync(100, claimant)).HoldsClaim.Should().BeTrue("claimant {0} fits the refill", claimant);
        }

        (await setup.ClaimsAsync()).Should().Equal(
            new Dictionary<long, string> { [setup.Refill + 1] = $"2000:0:{setup.Refill + 20}" }, "one entry per refill: at its first claim's moment, lasting its latest claimant's grace");

        await setup.StepAsync(TimeSpan.FromMilliseconds(setup.Refill + 20 - await setup.ServerMillisecondsAsync()), claimants);
        (await setup.ReserveAsync(8_001, claimant: 0)).Status.Should().Be(BackendReservationStatus.Refused, "2,000 of the refill are claimed");
        foreach (var claimant in claimants)
        {
            (await setup.ReserveAsync(100, claimant)).Status.Should().Be(BackendReservationStatus.Granted, "claimant {0} redeems its claim", claimant);
        }

        (await setup.ReserveAsync(8_000, claimant: 0)).Status.Should().Be(BackendReservationStatus.Granted, "the room no claim holds");
        (await setup.ReserveAsync(1, claimant: 0)).Status.Should().Be(BackendReservationStatus.Refused);
        (await setup.ClaimsAsync()).Should().BeEmpty();
    }

    [Fact]
    public async Task A_claimant_told_a_moved_moment_redeems_from_its_refills_entry()
    {
        await using var setup = await SpentAsync(_redis.Configuration, grace: LongGrace);
        (await setup.ReserveAsync(5_000, claimant: 1)).HoldsClaim.Should().BeTrue();
        await setup.Database.HashSetAsync(setup.BudgetKey, "te", setup.Refill + 20);
        (await setup.ReserveAsync(5_000, claimant: 2)).HoldsClaim.Should().BeTrue();
        (await setup.ClaimsAsync()).Should().Equal(
            new Dictionary<long, string> { [setup.Refill] = $"10000:0:{setup.Refill + 20}" }, "the second claim joined the refill's entry, which lasts its grace");
        ((string?)await setup.Database.StringGetAsync(RedisStoreLayout.ClaimantKeyOf(setup.BudgetKey, 2))).Should().Be($"{setup.Refill + 20}:5000:0", "the second claimant keeps the moment it was told");

        var early = await setup.ReserveAsync(5_000, claimant: 2);
        (early.Status, early.HoldsClaim).Should().Be((BackendReservationStatus.Refused, true));
        early.RetryAfter.Should().BeGreaterThan(TimeSpan.FromSeconds(20)).And.BeLessThanOrEqualTo(TimeSpan.FromMilliseconds(30_020), "early: the time left to the moment it was told, the refill moved 20 ms");

        await setup.StepAsync(TimeSpan.FromMilliseconds(setup.Refill + 20 - await setup.ServerMillisecondsAsync()), 1, 2);
        (await setup.ReserveAsync(1, claimant: 0)).Status.Should().Be(BackendReservationStatus.Refused, "the refill is claimed whole");
        (await setup.ReserveAsync(5_000, claimant: 2)).Status.Should().Be(BackendReservationStatus.Granted, "told the moved moment, it redeems from the refill's entry");
        (await setup.ReserveAsync(5_000, claimant: 1)).Status.Should().Be(BackendReservationStatus.Granted);
        (await setup.ReserveAsync(1, claimant: 0)).Status.Should().Be(BackendReservationStatus.Refused, "the window is spent");
    }

    [Fact]
    public async Task A_claim_given_back_after_its_refill_moved_frees_its_room()
    {
        await using var setup = await SpentAsync(_redis.Configuration, grace: LongGrace);
        (await setup.ReserveAsync(5_000, claimant: 1)).HoldsClaim.Should().BeTrue();
        await setup.Database.HashSetAsync(setup.BudgetKey, "te", setup.Refill + 20);
        (await setup.ReserveAsync(5_000, claimant: 2)).HoldsClaim.Should().BeTrue();

        var flushed = setup.Replica.RedisStore.Reservations!.Flushed;
        setup.Store.ReleaseClaim(setup.Key, 2);
        await Eventually.HoldsAsync(() => setup.Replica.RedisStore.Reservations!.Flushed > flushed, Flushed, "the claim given back reaches Redis");

        (await setup.ClaimsAsync()).Should().Equal(
            new Dictionary<long, string> { [setup.Refill] = $"5000:0:{setup.Refill + 20}" }, "told the moved moment, its amount leaves the refill's entry");
        var third = await setup.ReserveAsync(5_000, claimant: 3);
        third.HoldsClaim.Should().BeTrue();
        third.RetryAfter.Should().BeLessThanOrEqualTo(TimeSpan.FromSeconds(30), "the refill has room again");
    }

    [Fact]
    public async Task A_budget_keeps_at_most_16_claim_moments_and_a_request_past_them_is_told_its_refill_unclaimed()
    {
        // The rule writes one moment per refill claimed: 16 moments are a peer's (here all in the refill after the next).
        await using var setup = await SpentAsync(_redis.Configuration);
        await setup.Database.HashSetAsync(
            setup.ClaimsKey, [.. Enumerable.Range(1, ReservationScripts.MaxClaimMoments).Select(i => new HashEntry(setup.Refill + 30_000 + i, "1:0"))]);
        await setup.Database.KeyExpireAsync(setup.ClaimsKey, TimeSpan.FromMinutes(1));

        var past = await setup.ReserveAsync(1, claimant: 1);

        (past.Status, past.HoldsClaim).Should().Be((BackendReservationStatus.Refused, false), "past 16 moments, the refill is named, unclaimed");
        past.RetryAfter.Should().BeGreaterThan(TimeSpan.FromSeconds(20)).And.BeLessThanOrEqualTo(TimeSpan.FromSeconds(30), "the refill");
        (await setup.ClaimsAsync()).Keys.Should().Equal(Enumerable.Range(1, ReservationScripts.MaxClaimMoments).Select(i => setup.Refill + 30_000 + i), "the 16 claims stay");
        (await setup.Database.KeyExistsAsync(RedisStoreLayout.ClaimantKeyOf(setup.BudgetKey, 1))).Should().BeFalse("no claim, no record");
    }

    [Fact]
    public async Task A_caller_whose_retry_lands_on_another_replica_redeems_its_claim_there()
    {
        await using var setup = await SpentAsync(_redis.Configuration, grace: LongGrace);
        await using var other = await RedisReservationTests.StartReplicaAsync(_redis.Configuration, setup.Prefix);
        other.RedisStore.Reservations!.ClaimGrace = LongGrace;
        var elsewhere = RedisReservationTests.Reserving(other);
        var now = other.Time.GetUtcNow();
        (await setup.ReserveAsync(6_000, claimant: 1)).HoldsClaim.Should().BeTrue();

        var early = await elsewhere.ReserveAsync(Key, 6_000, 0, 0, 1, now, default);
        early.HoldsClaim.Should().BeTrue("the other replica knows the claim: the caller is early");
        early.RetryAfter.Should().BeGreaterThan(TimeSpan.FromSeconds(20));
        await setup.StepToClaimAsync(claimant: 1);

        (await elsewhere.ReserveAsync(Key, 4_001, 0, 0, 2, now, default)).Status.Should().Be(BackendReservationStatus.Refused);
        (await elsewhere.ReserveAsync(Key, 6_000, 0, 0, 1, now, default)).Status.Should().Be(BackendReservationStatus.Granted, "redeemed through the other replica");
        (await setup.ReserveAsync(4_000, claimant: 0)).Status.Should().Be(BackendReservationStatus.Granted);
        (await setup.ReserveAsync(1, claimant: 0)).Status.Should().Be(BackendReservationStatus.Refused);
    }

    [Fact]
    public async Task Claims_and_claimant_records_expire_with_their_claims_grace()
    {
        await using var setup = await SpentAsync(_redis.Configuration);
        var claim = await setup.ReserveAsync(6_000, claimant: 1);
        var bound = RedisReservations.Horizon + RedisReservations.Grace;

        var claimsTtl = await setup.Database.KeyTimeToLiveAsync(setup.ClaimsKey);
        var recordTtl = await setup.Database.KeyTimeToLiveAsync(RedisStoreLayout.ClaimantKeyOf(setup.BudgetKey, 1));

        // The claim's moment, seen a little later than the script saw it, plus the grace.
        claimsTtl.Should().NotBeNull().And.BeGreaterThan(claim.RetryAfter + RedisReservations.Grace - TimeSpan.FromSeconds(10)).And.BeLessThanOrEqualTo(claim.RetryAfter + RedisReservations.Grace);
        recordTtl.Should().NotBeNull().And.BeGreaterThan(claim.RetryAfter + RedisReservations.Grace - TimeSpan.FromSeconds(10)).And.BeLessThanOrEqualTo(claim.RetryAfter + RedisReservations.Grace);
        claimsTtl.Should().BeLessThanOrEqualTo(bound);
        (await setup.Database.KeyTimeToLiveAsync(setup.BudgetKey)).Should().NotBeNull();
    }

    [Fact]
    public async Task Whatever_a_peer_wrote_into_the_claims_or_a_claimants_record_a_reservation_never_throws_and_both_heal()
    {
        // Not spent: 10,000 free in the window, so what the claims read as decides.
        await using var setup = await SpentAsync(_redis.Configuration, remaining: 10_000);
        var database = setup.Database;
        var record = RedisStoreLayout.ClaimantKeyOf(setup.BudgetKey, 1);

        // Of another type.
        await database.StringSetAsync(setup.ClaimsKey, "not a hash");
        await database.ListLeftPushAsync(record, "not a record");
        (await setup.ReserveAsync(1_000, claimant: 1)).Status.Should().Be(BackendReservationStatus.Granted);
        (await database.KeyExistsAsync(setup.ClaimsKey)).Should().BeFalse();
        (await database.KeyExistsAsync(record)).Should().BeFalse();

        // Too many moments: dropped whole, whatever they hold.
        var serverMs = await setup.ServerMillisecondsAsync();
        await database.HashSetAsync(setup.ClaimsKey, [.. Enumerable.Range(1, 40).Select(i => new HashEntry(serverMs + (i * 1_000L), "10000:0"))]);
        (await setup.ReserveAsync(1_000, claimant: 0)).Status.Should().Be(BackendReservationStatus.Granted, "the claims were dropped");
        (await database.KeyExistsAsync(setup.ClaimsKey)).Should().BeFalse();

        // Fields that are not moments, moments outside the horizon, amounts that are not numbers or lie beyond the limit.
        // The valid one within half a window of the current window's refill (e − w, about now): that window's claim.
        var valid = serverMs + 5_000;
        await database.HashSetAsync(setup.ClaimsKey,
        [
            new("soon", "1:1"), new("-1000", "1:1"), new("99999999999999999999", "1:1"), new(serverMs + 3_600_000, "1:1"),
            new(serverMs + 21_000, "-5:3"), new(serverMs + 22_000, "1e300:1"), new(serverMs + 23_000, "lots"), new(serverMs + 24_000, new string('9', 100)),
            new(valid, "999999999999:5"),
        ]);
        (await setup.ReserveAsync(1, claimant: 0)).Status.Should().Be(BackendReservationStatus.Refused, "the one valid claim, clamped to the limit, holds the whole window");
        (await setup.ClaimsAsync()).Should().Equal(new Dictionary<long, string> { [valid] = "10000:5" });
        (await database.KeyTimeToLiveAsync(setup.ClaimsKey)).Should().NotBeNull().And.BeLessThanOrEqualTo(RedisReservations.Horizon + RedisReservations.Grace);

        // Records that do not parse, or name a moment beyond the horizon: the claimant is a newcomer.
        foreach (var garbage in new[] { "x", "99999999999999999999:1:1", $"{serverMs + 3_600_000}:1:1", "1:2", new string('1', 100) })
        {
            await database.StringSetAsync(record, garbage);
            var newcomer = await setup.ReserveAsync(1_000, claimant: 1);
            newcomer.HoldsClaim.Should().BeTrue($"'{garbage[..Math.Min(20, garbage.Length)]}' is no claim: the claimant claims the next refill");
            newcomer.RetryAfter.Should().BeGreaterThan(TimeSpan.FromSeconds(20));
            await database.KeyDeleteAsync(record);
        }

        setup.Replica.RedisStore.IsInOutage.Should().BeFalse("garbage is no outage");
    }

    [Fact]
    public async Task A_user_restricted_to_the_reservations_acl_claims_and_redeems()
    {
        // The documented ACL of the store and of shared reservations (docs/distributed.md), with the commands the claims
        // add inside the script: HLEN, HGETALL, HGET, HDEL and STRLEN (GET, SET and PTTL the store has already).
        var user = $"claims-{Guid.NewGuid():N}";
        await using var admin = await ConnectionMultiplexer.ConnectAsync(_redis.Configuration);
        await SetUpReservationsUserAsync(admin, user);
        try
        {
            var restricted = $"127.0.0.1:{_redis.Port},connectTimeout=2000,user={user},password=secret,tiebreaker=";
            await using var setup = await SpentAsync(restricted, grace: LongGrace, peerConfiguration: _redis.Configuration);
            (await setup.ReserveAsync(6_000, claimant: 1)).HoldsClaim.Should().BeTrue();
            await setup.StepToClaimAsync(claimant: 1);
            (await setup.ReserveAsync(4_001, claimant: 0)).Status.Should().Be(BackendReservationStatus.Refused);
            (await setup.ReserveAsync(6_000, claimant: 1)).Status.Should().Be(BackendReservationStatus.Granted);

            // A claim nobody waited for, given back by the flush under the same user.
            (await setup.ReserveAsync(4_001, claimant: 2)).HoldsClaim.Should().BeTrue();
            var flushed = setup.Replica.RedisStore.Reservations!.Flushed;
            setup.Replica.RedisStore.Reservations!.ReleaseClaim(setup.Key, 2);
            await Eventually.HoldsAsync(() => setup.Replica.RedisStore.Reservations!.Flushed > flushed, Flushed, "the claim is given back");
            (await setup.Database.KeyExistsAsync(RedisStoreLayout.ClaimantKeyOf(setup.BudgetKey, 2))).Should().BeFalse();
            setup.Replica.RedisStore.IsInOutage.Should().BeFalse();
            setup.Replica.WarningCount.Should().Be(0);
        }
        finally
        {
            await admin.GetDatabase().ExecuteAsync("ACL", ["DELUSER", user]);
        }
    }

    [Fact]
    public async Task A_claim_on_a_continuous_budget_expired_in_real_time_leaves_nothing_held_for_it()
    {
        // Not stepped: the flow claims' key lives on its own clock too, and a claim past its grace must leave the
        // count although that key may be gone by then.
        await using var setup = await FlowingAsync(_redis.Configuration);
        setup.FrozenAt = null;
        var claim = await setup.ReserveAsync(5_020, claimant: 1);
        claim.HoldsClaim.Should().BeTrue();
        ((long)await setup.Database.HashGetAsync(setup.BudgetKey, "th")).Should().Be(5_020);

        await Task.Delay(claim.RetryAfter + RedisReservations.Grace + TimeSpan.FromMilliseconds(500));
        (await setup.ReserveAsync(1, claimant: 0)).Status.Should().Be(BackendReservationStatus.Granted);
        ((double)await setup.Database.HashGetAsync(setup.BudgetKey, "th")).Should().Be(0, "the claim expired unredeemed: nothing holds it");

        // A report now counts what the backend lacks, what was reserved since, and no claim.
        var reservation = await setup.ReserveAsync(1, claimant: 0);
        var flushed = setup.Replica.RedisStore.Reservations!.Flushed;
        var now = setup.Replica.Time.GetUtcNow();
        setup.Store.Correct(reservation, new BackendReservationReport(9_000, 10_000, TimeSpan.FromSeconds(260), null, null, TimeSpan.Zero, now, now));
        await Eventually.HoldsAsync(() => setup.Replica.RedisStore.Reservations!.Flushed > flushed, Flushed, "the correction reaches Redis");
        (await setup.ReserveAsync(8_500, claimant: 0)).Status.Should().Be(BackendReservationStatus.Granted, "the backend has 9,000 left");
    }

    [Fact]
    public async Task A_continuous_token_budget_beside_a_requests_budget_that_names_no_window_flows_and_is_corrected_by_its_reports()
    {
        // OpenAI at a low request rate: its requests budget's reset is milliseconds, gone by the time the answer is read.
        var prefix = RedisReservationTests.NewPrefix();
        await using var replica = await RedisReservationTests.StartReplicaAsync(_redis.Configuration, prefix);
        var store = RedisReservationTests.Reserving(replica);
        await using var peer = await ConnectionMultiplexer.ConnectAsync(_redis.Configuration);
        var budgetKey = new RedisStoreLayout(prefix, prefix + "events").ReservationKeyOf(Key);
        foreach (var (cost, remaining, reset) in new[] { (1_000L, 9_000L, 200), (4_000L, 5_000L, 260), (1L, 0L, 260) })
        {
            var now = replica.Time.GetUtcNow().AddMilliseconds(-20);
            var reservation = await store.ReserveAsync(Key, cost, 0, 0, now, default);
            var flushed = replica.RedisStore.Reservations!.Flushed;
            store.Correct(reservation, new BackendReservationReport(remaining, 10_000, TimeSpan.FromSeconds(reset), 9_999, 10_000, TimeSpan.FromMilliseconds(6), now, now));
            await Eventually.HoldsAsync(() => replica.RedisStore.Reservations!.Flushed > flushed, Flushed, "the correction reaches Redis");
        }

        ((double)await peer.GetDatabase().HashGetAsync(budgetKey, "tz")).Should().BeGreaterThan(0, "the tokens budget has a rate");
        var flowAt = (long)await peer.GetDatabase().HashGetAsync(budgetKey, "ty");
        var before = await RedisReservationTests.ServerMillisecondsAsync(peer.GetDatabase());
        var refused = await store.ReserveAsync(Key, 4_000, 0, 0, replica.Time.GetUtcNow(), default);
        var after = await RedisReservationTests.ServerMillisecondsAsync(peer.GetDatabase());
        refused.Status.Should().Be(BackendReservationStatus.Refused, "the backend reported 0 tokens left");

        // 4,000 of 10,000 / 260 s, less the real time the flow ran since it was set (and the report's 20 ms).
        refused.RetryAfter.Should().BeGreaterThanOrEqualTo(TimeSpan.FromMilliseconds(104_000 - 20 - (after - flowAt) - 1))
            .And.BeLessThanOrEqualTo(TimeSpan.FromMilliseconds(104_000 - 20 - (before - flowAt) + 1));
    }

    [Fact]
    public async Task A_continuous_budget_with_a_peers_tiny_rate_is_no_outage()
    {
        await using var setup = await FlowingAsync(_redis.Configuration);
        await setup.Database.HashSetAsync(setup.BudgetKey, [new("tz", "1e-310")]);
        var refused = await setup.ReserveAsync(9_000, claimant: 0);
        refused.Status.Should().Be(BackendReservationStatus.Refused);
        refused.RetryAfter.Should().BeGreaterThan(TimeSpan.Zero);
        setup.Replica.RedisStore.IsInOutage.Should().BeFalse("garbage is no outage");
    }

    [Fact]
    public async Task A_continuous_budget_claims_only_within_the_horizon_though_its_longest_window_is_shorter()
    {
        // MaxUnavailability (the longest window) of 30 s, below the 60 s horizon: a wait beyond the horizon is told,
        // capped at the longest window, but never claimed (claimed at the cap, its claimant would be admitted while
        // the flow still lacks the room, ahead of the claims queued before it).
        var prefix = RedisReservationTests.NewPrefix();
        await using var replica = await Replica.StartAsync(_redis.Configuration, prefix, DateTimeOffset.UtcNow, services => services.Configure<PriorityRoutingRedisStoreOptions>(options =>
        {
            options.Reservations = true;
            options.ReservationTimeout = TimeSpan.FromSeconds(1);
            options.MaxUnavailability = TimeSpan.FromSeconds(30);
        }));
        await using var setup = new Claiming(replica, await ConnectionMultiplexer.ConnectAsync(_redis.Configuration), prefix, Key);
        var now = await setup.ServerMillisecondsAsync();

        // 30,000 spent on a budget of 10,000 refilled at 10,000 per 30 s: about 60 s of claims queued.
        await setup.Database.HashSetAsync(setup.BudgetKey, [
            new("tl", "10000"), new("tk", "1"), new("tx", "30000"), new("ty", now.ToString(CultureInfo.InvariantCulture)),
            new("tz", (10_000.0 / 30_000).ToString("R", CultureInfo.InvariantCulture)), new("th", "20000")]);
        await setup.Database.SortedSetAddAsync(setup.FlowClaimsKey, "00000000000000aa:20000:0", now + 59_000);

        var refused = await setup.ReserveAsync(1_000, claimant: 1);
        refused.HoldsClaim.Should().BeFalse("its turn (about 63 s) lies beyond the horizon");
        refused.Status.Should().Be(BackendReservationStatus.Refused);
        refused.RetryAfter.Should().Be(TimeSpan.FromSeconds(30), "told no later than the longest window");
        ((long)await setup.Database.HashGetAsync(setup.BudgetKey, "th")).Should().Be(20_000, "nothing was claimed");
    }

    [Fact]
    public async Task A_continuous_budget_ends_the_foregrounds_windows_without_a_report()
    {
        // The simulation's counter's rule too (SharedReservationCounterTests, same name): a background request is
        // judged on the foreground's recent peak, halved per window ended, reports or not.
        await using var setup = await FlowingAsync(_redis.Configuration);
        await setup.StepAsync(TimeSpan.FromSeconds(2_000));
        (await setup.ReserveAsync(20, claimant: 0)).Status.Should().Be(BackendReservationStatus.Granted);
        (await setup.ReserveAsync(5_000, claimant: 0, headroom: 0.1)).Status.Should().Be(BackendReservationStatus.Granted, "the foreground's peak of 5,000, halved per window ended since (7 of 260 s), leaves room for it");
    }

    [Fact]
    public async Task A_user_restricted_to_the_reservations_acl_claims_and_redeems_on_a_continuous_budget()
    {
        // The documented ACL (docs/distributed.md) with what a continuous budget's claims add inside the script:
        // ZADD, ZREM, ZSCORE, ZCARD, ZRANGEBYSCORE and ZREMRANGEBYSCORE.
        var user = $"flows-{Guid.NewGuid():N}";
        await using var admin = await ConnectionMultiplexer.ConnectAsync(_redis.Configuration);
        await SetUpReservationsUserAsync(admin, user, "+zadd", "+zrem", "+zscore", "+zcard", "+zrangebyscore", "+zremrangebyscore");
        try
        {
            var restricted = $"127.0.0.1:{_redis.Port},connectTimeout=2000,user={user},password=secret,tiebreaker=";
            await using var setup = await FlowingAsync(restricted, peerConfiguration: _redis.Configuration);
            var claim = await setup.ReserveAsync(5_500, claimant: 1);
            claim.HoldsClaim.Should().BeTrue();
            await setup.StepAsync(claim.RetryAfter + Claiming.Due, 1);
            (await setup.ReserveAsync(5_500, claimant: 1)).Status.Should().Be(BackendReservationStatus.Granted);

            // A claim nobody waited for, given back by the flush under the same user; another left to expire.
            (await setup.ReserveAsync(300, claimant: 2)).HoldsClaim.Should().BeTrue();
            var flushed = setup.Replica.RedisStore.Reservations!.Flushed;
            setup.Replica.RedisStore.Reservations!.ReleaseClaim(setup.Key, 2);
            await Eventually.HoldsAsync(() => setup.Replica.RedisStore.Reservations!.Flushed > flushed, Flushed, "the claim is given back");
            var expiring = await setup.ReserveAsync(300, claimant: 3);
            expiring.HoldsClaim.Should().BeTrue();
            await setup.StepAsync(expiring.RetryAfter + RedisReservations.Grace + TimeSpan.FromSeconds(1), 3);
            await setup.ReserveAsync(1, claimant: 0);
            (await setup.Database.SortedSetLengthAsync(setup.FlowClaimsKey)).Should().Be(0);
            setup.Replica.RedisStore.IsInOutage.Should().BeFalse();
            setup.Replica.WarningCount.Should().Be(0);
        }
        finally
        {
            await admin.GetDatabase().ExecuteAsync("ACL", ["DELUSER", user]);
        }
    }

    [Fact]
    public async Task Whatever_a_peer_wrote_into_a_continuous_budgets_claims_never_fails_a_reservation()
    {
        await using var setup = await FlowingAsync(_redis.Configuration);
        setup.FrozenAt = null;
        var database = setup.Database;

        // A key of another type is replaced.
        await database.StringSetAsync(setup.FlowClaimsKey, "garbage");
        (await setup.ReserveAsync(5_500, claimant: 1)).HoldsClaim.Should().BeTrue("5,000 are spent: the claimant claims in the flow");
        (await database.KeyTypeAsync(setup.FlowClaimsKey)).Should().Be(RedisType.SortedSet);

        // Members that do not parse, past their grace, are dropped without freeing anything; valid ones stay.
        var serverMs = await setup.ServerMillisecondsAsync();
        await database.SortedSetAddAsync(setup.FlowClaimsKey, [
            new("x", serverMs - 60_000), new("zz:1:1", serverMs - 60_000), new($"00000000000000aa:{new string('9', 30)}:1", serverMs - 60_000),
            new(new string('1', 100), serverMs - 60_000)]);
        (await setup.ReserveAsync(100, claimant: 0)).Status.Should().Be(BackendReservationStatus.Refused, "10,500 are still spent: garbage frees nothing");
        (await database.SortedSetLengthAsync(setup.FlowClaimsKey)).Should().Be(1, "the claim of claimant 1 stays");

        // Spend and rate fields that are not numbers in their bounds read as nothing known of the flow: no request fails.
        await database.HashSetAsync(setup.BudgetKey, [new("tx", "nan"), new("tz", "-1"), new("th", "1e400")]);
        (await setup.ReserveAsync(100, claimant: 0)).Status.Should().NotBe(BackendReservationStatus.Unknown);

        // A rate slower than any reset can name (the wait would be centuries) is no rate: the windows decide.
        await database.HashSetAsync(setup.BudgetKey, [new("tk", "1"), new("tx", "20000"), new("tz", "1e-300"), new("tl", "10000")]);
        (await setup.ReserveAsync(100, claimant: 0)).Status.Should().NotBe(BackendReservationStatus.Unknown);
        ((double)await database.HashGetAsync(setup.BudgetKey, "tz")).Should().Be(0);
        setup.Replica.RedisStore.IsInOutage.Should().BeFalse("garbage is no outage");
    }

    /// <summary>
    /// Creates <paramref name="user"/> with the documented ACL of the store and of shared reservations
    /// (docs/distributed.md): the claims' HLEN, HGETALL, HGET, HDEL and STRLEN included, and <paramref name="more"/>.
    /// </summary>
    private static Task SetUpReservationsUserAsync(ConnectionMultiplexer admin, string user, params string[] more)
        => admin.GetDatabase().ExecuteAsync("ACL", [
            "SETUSER", user, "on", ">secret", "~test:*", "~reservations:test:*", "&test:*",
            "+eval", "+evalsha", "+script|load", "+scan", "+pttl", "+get", "+set", "+publish", "+subscribe", "+unsubscribe",
            "+hello", "+auth", "+client|setname", "+client|id", "+info", "+echo", "+ping", "+cluster|nodes", "+cluster|slots", "+quit",
            "+time", "+type", "+del", "+hmget", "+hset", "+pexpire", "+exists",
            "+hlen", "+hgetall", "+hget", "+hdel", "+strlen", .. more]);

    /// <summary>
    /// A replica and one budget of 10,000 tokens per window (30 s unless told), its window's end on the server
    /// (<see cref="Claiming.Refill"/>), <paramref name="remaining"/> of it left (none unless told), reached through a peer's
    /// connection too. Seeded by a background reservation: no foreground demand holds background work off.
    /// </summary>
    internal static async Task<Claiming> SpentAsync(
        string configuration,
        TimeSpan? grace = null,
        TimeSpan? tokensWindow = null,
        (long Limit, TimeSpan Window)? requests = null,
        long remaining = 0,
        string deployment = "gpt-4o",
        TimeSpan? timeout = null,
        string? peerConfiguration = null)
    {
        var prefix = RedisReservationTests.NewPrefix();
        var replica = timeout is { } reservationTimeout
            ? await Replica.StartAsync(configuration, prefix, DateTimeOffset.UtcNow, services => services.Configure<PriorityRoutingRedisStoreOptions>(options =>
            {
                options.Reservations = true;
                options.ReservationTimeout = reservationTimeout;
            }))
            : await RedisReservationTests.StartReplicaAsync(configuration, prefix);
        replica.RedisStore.Reservations!.ClaimGrace = grace ?? RedisReservations.Grace;
        var peer = await ConnectionMultiplexer.ConnectAsync(peerConfiguration ?? configuration);
        var key = new BackendStateKey(Key.Backend, deployment);
        var setup = new Claiming(replica, peer, prefix, key);
        var now = replica.Time.GetUtcNow();
        var seed = await setup.Store.ReserveAsync(key, 1_000, 0.2, 0, now, default);
        var flushed = replica.RedisStore.Reservations!.Flushed;
        setup.Store.Correct(seed, new BackendReservationReport(
            remaining, 10_000, tokensWindow ?? TimeSpan.FromSeconds(30), requests is null ? null : (long?)0, requests?.Limit, requests?.Window ?? TimeSpan.Zero, now, now));
        await Eventually.HoldsAsync(() => replica.RedisStore.Reservations!.Flushed > flushed, Flushed, "the correction reaches Redis");
        setup.Refill = (long)await setup.Database.HashGetAsync(setup.BudgetKey, "te");
        return setup;
    }

    /// <summary>
    /// A replica and one budget of 10,000 tokens learned continuous (two reports name full moments 60 s apart, less than
    /// the 260 s window), 5,000 of it spent and coming back at 5,000 per 260 s (about 19 a second: the milliseconds a test
    /// takes move it by a few tokens); the simulation's counter's <c>Flowing</c> too.
    /// </summary>
    internal static async Task<Claiming> FlowingAsync(string configuration, string? peerConfiguration = null, string deployment = "gpt-4o")
    {
        var prefix = RedisReservationTests.NewPrefix();
        var replica = await RedisReservationTests.StartReplicaAsync(configuration, prefix);
        replica.RedisStore.Reservations!.ClaimGrace = RedisReservations.Grace;
        var key = new BackendStateKey(Key.Backend, deployment);
        var setup = new Claiming(replica, await ConnectionMultiplexer.ConnectAsync(peerConfiguration ?? configuration), prefix, key);
        foreach (var (cost, remaining, reset) in new[] { (1_000L, 9_000L, 200), (4_000L, 5_000L, 260) })
        {
            var now = replica.Time.GetUtcNow();
            var reservation = await setup.Store.ReserveAsync(key, cost, 0, 0, now, default);
            var flushed = replica.RedisStore.Reservations!.Flushed;
            setup.Store.Correct(reservation, new BackendReservationReport(remaining, 10_000, TimeSpan.FromSeconds(reset), null, null, TimeSpan.Zero, now, now));
            await Eventually.HoldsAsync(() => replica.RedisStore.Reservations!.Flushed > flushed, Flushed, "the correction reaches Redis");
        }

        ((double)await setup.Database.HashGetAsync(setup.BudgetKey, "tz")).Should().BeApproximately(5_000.0 / 260_000, 1e-9, "the budget is a flow");
        setup.FrozenAt = (long)await setup.Database.HashGetAsync(setup.BudgetKey, "ty");
        return setup;
    }

    /// <summary>One budget of one replica, and a peer's view of its keys.</summary>
    internal sealed class Claiming(Replica replica, ConnectionMultiplexer peer, string prefix, BackendStateKey key) : IAsyncDisposable
    {
        public Replica Replica { get; } = replica;

        public string Prefix { get; } = prefix;

        public BackendStateKey Key { get; } = key;

        public IBackendReservationStore Store => RedisReservationTests.Reserving(Replica);

        public IDatabase Database => peer.GetDatabase();

        public RedisKey BudgetKey => new RedisStoreLayout(Prefix, Prefix + "events").ReservationKeyOf(Key);

        public RedisKey ClaimsKey => RedisStoreLayout.ClaimsKeyOf(BudgetKey);

        public RedisKey FlowClaimsKey => RedisStoreLayout.FlowClaimsKeyOf(BudgetKey);

        /// <summary>Gets the token window's end when the budget was spent (Redis server milliseconds).</summary>
        public long Refill { get; set; }

        /// <summary>
        /// Gets or sets the server moment at which real time stops for a flow (<see cref="FlowingAsync"/>): every
        /// reservation first steps the budget's moments forward by the real time since (a flow gives back about 19
        /// tokens a second, and a test paused by a loaded machine must not see them), so only <see cref="StepAsync"/>
        /// moves the flow's time. <see langword="null"/>: real time runs.
        /// </summary>
        public long? FrozenAt { get; set; }

        /// <summary>
        /// Gets how far past a claim's moment a test steps to redeem it: with time frozen, the claim's moment lies a round
        /// trip (of a loaded machine) after the moment frozen, which a step of exactly the wait told does not cover. Half a
        /// second is about 10 tokens of the flow's rate, within every margin of the tests.
        /// </summary>
        public static TimeSpan Due { get; } = TimeSpan.FromMilliseconds(500);

        private HashSet<long> Claimants { get; } = [];

        public async Task<BackendReservation> ReserveAsync(long cost, long claimant, double headroom = 0)
        {
            if (FrozenAt is { } frozenAt)
            {
                await StepAsync(TimeSpan.FromMilliseconds(frozenAt - await ServerMillisecondsAsync()), [.. Claimants]);

                // From here to the script: one round trip of real time, which the next reservation steps back.
                FrozenAt = await ServerMillisecondsAsync();
            }

            if (claimant != 0)
            {
                Claimants.Add(claimant);
            }

            return await Store.ReserveAsync(Key, cost, headroom, 0, claimant, Replica.Time.GetUtcNow(), default);
        }

        /// <summary>The claims hash: moment → <c>tokens:requests</c>, by moment.</summary>
        public async Task<SortedDictionary<long, string>> ClaimsAsync()
            => new((await Database.HashGetAllAsync(ClaimsKey)).ToDictionary(entry => (long)entry.Name, entry => (string)entry.Value!));

        public async Task<long> ServerMillisecondsAsync()
        {
            var time = (RedisResult[])(await Database.ExecuteAsync("TIME"))!;
            return (long.Parse(time[0].ToString()!, CultureInfo.InvariantCulture) * 1000) + (long.Parse(time[1].ToString()!, CultureInfo.InvariantCulture) / 1000);
        }

        /// <summary>Steps the budget's moments back until <paramref name="claimant"/>'s claim is due now, or <paramref name="beyond"/> past it.</summary>
        public async Task StepToClaimAsync(long claimant, TimeSpan beyond = default)
        {
            var record = (string)(await Database.StringGetAsync(RedisStoreLayout.ClaimantKeyOf(BudgetKey, claimant)))!;
            var moment = long.Parse(record.Split(':')[0], CultureInfo.InvariantCulture);
            await StepAsync(TimeSpan.FromMilliseconds(moment - await ServerMillisecondsAsync()) + beyond, claimant);
        }

        /// <summary>
        /// As if <paramref name="elapsed"/> had passed: every moment the budget's keys hold (its windows' ends, its claims,
        /// the records of <paramref name="claimants"/>) moves that much into the past on the server's clock.
        /// </summary>
        public async Task StepAsync(TimeSpan elapsed, params long[] claimants)
        {
            var step = (long)elapsed.TotalMilliseconds;
            foreach (var field in new[] { "te", "re", "tfe", "rfe", "ty", "ry" })
            {
                var value = await Database.HashGetAsync(BudgetKey, field);
                if (value.HasValue && (long)value > 0)
                {
                    await Database.HashSetAsync(BudgetKey, field, (long)value - step);
                }
            }

            var claims = await Database.HashGetAllAsync(ClaimsKey);
            await Database.KeyDeleteAsync(ClaimsKey);
            if (claims.Length > 0)
            {
                await Database.HashSetAsync(ClaimsKey, [.. claims.Select(entry => new HashEntry((long)entry.Name - step, Stepped((string)entry.Value!, step)))]);
                await Database.KeyExpireAsync(ClaimsKey, TimeSpan.FromMinutes(3));
            }

            // A flow's claims (a budget refilled continuously), scored by their moments.
            var flowClaims = await Database.SortedSetRangeByRankWithScoresAsync(FlowClaimsKey);
            foreach (var claim in flowClaims)
            {
                await Database.SortedSetAddAsync(FlowClaimsKey, claim.Element, claim.Score - step);
            }

            foreach (var claimant in claimants)
            {
                var record = RedisStoreLayout.ClaimantKeyOf(BudgetKey, claimant);
                var value = (string?)await Database.StringGetAsync(record);
                if (value?.Split(':') is [var moment, var tokens, var requests])
                {
                    await Database.StringSetAsync(record, $"{long.Parse(moment, CultureInfo.InvariantCulture) - step}:{tokens}:{requests}", expiry: null, keepTtl: true);
                }
            }
        }

        /// <summary>An entry's value with its latest claimant's moment (<c>tokens:requests:latest</c>), if any, stepped too.</summary>
        private static string Stepped(string value, long step)
            => value.Split(':') is [var tokens, var requests, var latest]
                ? $"{tokens}:{requests}:{long.Parse(latest, CultureInfo.InvariantCulture) - step}"
                : value;

        public async ValueTask DisposeAsync()
        {
            await Replica.DisposeAsync();
            await peer.DisposeAsync();
        }
    }
}
