using System.Globalization;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Polly.PriorityRouting.Redis.Tests.Support;
using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis.Tests;

/// <summary>
/// Shared reservations on a real Redis (<see cref="PriorityRoutingRedisStoreOptions.Reservations"/>): the script's
/// arithmetic through the store's own calls, and two replicas sending real HTTP to slow Kestrel backends that count
/// tokens when they admit a request.
/// </summary>
public sealed class RedisReservationTests : IClassFixture<RedisServerFixture>
{
    private static readonly TimeSpan Flushed = TimeSpan.FromSeconds(5);
    private static readonly BackendStateKey Key = new("ptu@http://ptu.example", "gpt-4o");

    private readonly RedisServerFixture _redis;

    public RedisReservationTests(RedisServerFixture redis) => _redis = redis;

    [Fact]
    public async Task A_corrected_budget_refuses_what_does_not_fit_until_its_refill()
    {
        await using var replica = await StartReplicaAsync(_redis.Configuration, NewPrefix());
        var store = Reserving(replica);
        var now = replica.Time.GetUtcNow();

        var first = await store.ReserveAsync(Key, 1_000, 0, 0, now, default);
        first.Status.Should().Be(BackendReservationStatus.Unknown, "nothing is known of the budget yet");
        first.IsCounted.Should().BeTrue("it is counted anyway, for the answer that corrects it");
        await CorrectAsync(replica, first, remaining: 2_000, limit: 10_000, reset: TimeSpan.FromSeconds(30));

        var fits = await store.ReserveAsync(Key, 2_000, 0, 0, now, default);
        var refused = await store.ReserveAsync(Key, 1, 0, 0, now, default);

        fits.Status.Should().Be(BackendReservationStatus.Granted);
        refused.Status.Should().Be(BackendReservationStatus.Refused);
        refused.RetryAfter.Should().BeGreaterThan(TimeSpan.FromSeconds(20)).And.BeLessThanOrEqualTo(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task A_late_answer_counts_what_was_reserved_since_its_own_reservation()
    {
        await using var replica = await StartReplicaAsync(_redis.Configuration, NewPrefix());
        var store = Reserving(replica);
        var now = replica.Time.GetUtcNow();
        var early = await store.ReserveAsync(Key, 1_000, 0, 0, now, default);
        await store.ReserveAsync(Key, 3_000, 0, 0, now, default);
        await store.ReserveAsync(Key, 500, 0, 0, now, default);

        // The backend admitted the early request before the two others: it had spent 1,000 then.
        await CorrectAsync(replica, early, remaining: 9_000, limit: 10_000, reset: TimeSpan.FromSeconds(30));

        (await store.ReserveAsync(Key, 5_500, 0, 0, now, default)).Status.Should().Be(BackendReservationStatus.Granted);
        (await store.ReserveAsync(Key, 1, 0, 0, now, default)).Status.Should().Be(BackendReservationStatus.Refused, "1,000 + 3,500 reserved since + 5,500 fill the 10,000");
    }

    // A budget refilled continuously, as a flow (ReservationScripts.FlowReserve; the simulation's counter's rule too:
    // SharedReservationCounterTests, same names). Time is stepped on the server (RedisClaimTests.Claiming.StepAsync).

    [Fact]
    public async Task A_budget_refilled_continuously_gives_back_what_its_report_lacked_at_the_rate_the_report_tells()
    {
        await using var setup = await RedisClaimTests.FlowingAsync(_redis.Configuration);
        (await setup.ReserveAsync(3_000, claimant: 0)).Status.Should().Be(BackendReservationStatus.Granted, "5,000 + 3,000 fit the 10,000");

        // 130 s later half of what the report lacked is back: 5,500 spent.
        await setup.StepAsync(TimeSpan.FromSeconds(130));
        (await setup.ReserveAsync(4_700, claimant: 0)).Status.Should().Be(BackendReservationStatus.Refused);
        (await setup.ReserveAsync(4_300, claimant: 0)).Status.Should().Be(BackendReservationStatus.Granted);

        var refused = await setup.ReserveAsync(1_000, claimant: 0);
        refused.Status.Should().Be(BackendReservationStatus.Refused);
        refused.RetryAfter.Should().BeCloseTo(TimeSpan.FromSeconds(41.6), TimeSpan.FromSeconds(1), "800 more must come back first, at 5,000 / 260 s");
    }

    [Fact]
    public async Task A_budget_refilled_continuously_gives_back_a_reservation_the_backend_did_not_count()
    {
        await using var setup = await RedisClaimTests.FlowingAsync(_redis.Configuration);
        var refusedByTheBackend = await setup.ReserveAsync(3_000, claimant: 0);
        (await setup.ReserveAsync(2_000, claimant: 0)).Status.Should().Be(BackendReservationStatus.Granted);
        await ReleaseAsync(setup.Replica, refusedByTheBackend);

        (await setup.ReserveAsync(3_200, claimant: 0)).Status.Should().Be(BackendReservationStatus.Refused, "5,000 + 2,000 are spent");
        (await setup.ReserveAsync(2_800, claimant: 0)).Status.Should().Be(BackendReservationStatus.Granted);
    }

    [Fact]
    public async Task A_late_answer_of_an_earlier_admission_never_brings_the_budgets_refill_forward()
    {
        // A budget refilled continuously names a sooner full moment in the answer of a request admitted earlier, and that
        // answer can arrive after a later one's (a longer completion). Taken full at the sooner moment, the budget grants
        // what the backend, full only at the later one, refuses (the simulation's one-replica 429s on OpenAI).
        var prefix = NewPrefix();
        await using var replica = await StartReplicaAsync(_redis.Configuration, prefix);
        var store = Reserving(replica);
        var now = replica.Time.GetUtcNow();
        await using var peer = await ConnectionMultiplexer.ConnectAsync(_redis.Configuration);
        var database = peer.GetDatabase();
        var key = new RedisStoreLayout(prefix, prefix + "events").ReservationKeyOf(Key);
        var earlier = await store.ReserveAsync(Key, 1_000, 0, 0, now, default);
        var later = await store.ReserveAsync(Key, 4_000, 0, 0, now, default);
        await CorrectAsync(replica, later, remaining: 5_000, limit: 10_000, reset: TimeSpan.FromSeconds(5));
        var refill = (long)await database.HashGetAsync(key, "te");

        // The earlier admission's answer names a moment 90 ms sooner: one window still, on the script's terms (100 ms).
        var untilSooner = refill - 90 - await ServerMillisecondsAsync(database);
        await CorrectAsync(replica, earlier, remaining: 9_000, limit: 10_000, reset: TimeSpan.FromMilliseconds(untilSooner));

        ((long)await database.HashGetAsync(key, "te")).Should().BeGreaterThanOrEqualTo(refill, "the budget is full at the later moment, not at the sooner one an older answer named");
    }

    [Fact]
    public async Task A_released_reservation_gives_its_room_back()
    {
        await using var replica = await StartReplicaAsync(_redis.Configuration, NewPrefix());
        var store = Reserving(replica);
        var now = replica.Time.GetUtcNow();
        await CorrectAsync(replica, await store.ReserveAsync(Key, 1_000, 0, 0, now, default), remaining: 9_000, limit: 10_000, reset: TimeSpan.FromSeconds(30));
        var large = await store.ReserveAsync(Key, 9_000, 0, 0, now, default);
        (await store.ReserveAsync(Key, 9_000, 0, 0, now, default)).Status.Should().Be(BackendReservationStatus.Refused);

        await ReleaseAsync(replica, large);

        (await store.ReserveAsync(Key, 9_000, 0, 0, now, default)).Status.Should().Be(BackendReservationStatus.Granted);
    }

    [Fact]
    public async Task A_release_of_a_reservation_made_before_the_report_that_set_the_count_gives_nothing_back()
    {
        await using var replica = await StartReplicaAsync(_redis.Configuration, NewPrefix());
        var store = Reserving(replica);
        var now = replica.Time.GetUtcNow();
        var early = await store.ReserveAsync(Key, 1_000, 0, 0, now, default);
        var later = await store.ReserveAsync(Key, 4_000, 0, 0, now, default);

        // The backend admitted the later request first and reported 4,000 spent; then it refused the early one (a 429):
        // the report's count never held it, so its release must not take 1,000 off what the backend has spent.
        await CorrectAsync(replica, later, remaining: 6_000, limit: 10_000, reset: TimeSpan.FromSeconds(30));
        await ReleaseAsync(replica, early);

        (await store.ReserveAsync(Key, 6_001, 0, 0, now, default)).Status.Should().Be(BackendReservationStatus.Refused, "the backend has 6,000 left");
        (await store.ReserveAsync(Key, 6_000, 0, 0, now, default)).Status.Should().Be(BackendReservationStatus.Granted);
    }

    [Fact]
    public async Task A_release_of_a_reservation_made_before_a_report_that_raised_the_count_gives_nothing_back()
    {
        await using var replica = await StartReplicaAsync(_redis.Configuration, NewPrefix());
        var store = Reserving(replica);
        var now = replica.Time.GetUtcNow();
        await CorrectAsync(replica, await store.ReserveAsync(Key, 1_000, 0, 0, now, default), remaining: 9_000, limit: 10_000, reset: TimeSpan.FromSeconds(30));
        var early = await store.ReserveAsync(Key, 1_000, 0, 0, now, default);
        var later = await store.ReserveAsync(Key, 4_000, 0, 0, now, default);

        // Same window: the backend admitted the later request and reported 7,000 spent (more than the 6,000 counted:
        // some spend the store never saw), which raises the count; then it refused the early one (a 429). The raised
        // count never held the early one, so its release must not take 1,000 off what the backend has spent.
        await CorrectAsync(replica, later, remaining: 3_000, limit: 10_000, reset: TimeSpan.FromSeconds(30));
        await ReleaseAsync(replica, early);

        (await store.ReserveAsync(Key, 3_001, 0, 0, now, default)).Status.Should().Be(BackendReservationStatus.Refused, "the backend has 3,000 left");
        (await store.ReserveAsync(Key, 3_000, 0, 0, now, default)).Status.Should().Be(BackendReservationStatus.Granted);
    }

    [Fact]
    public async Task A_reservation_with_headroom_leaves_that_share_of_the_limit_free()
    {
        await using var replica = await StartReplicaAsync(_redis.Configuration, NewPrefix());
        var store = Reserving(replica);
        var now = replica.Time.GetUtcNow();
        await CorrectAsync(replica, await store.ReserveAsync(Key, 1_000, 0.5, 0, now, default), remaining: 9_000, limit: 10_000, reset: TimeSpan.FromSeconds(30));

        (await store.ReserveAsync(Key, 4_500, 0.5, 0, now, default)).Status.Should().Be(BackendReservationStatus.Refused, "1,000 + 4,500 would take more than half");
        (await store.ReserveAsync(Key, 4_000, 0.5, 0, now, default)).Status.Should().Be(BackendReservationStatus.Granted);
        (await store.ReserveAsync(Key, 5_000, 0, 0, now, default)).Status.Should().Be(BackendReservationStatus.Granted, "a foreground request may use the headroom");
    }

    [Fact]
    public async Task A_background_request_larger_than_the_share_outside_the_headroom_is_admitted_on_a_full_budget_as_in_the_replica_view()
    {
        await using var replica = await StartReplicaAsync(_redis.Configuration, NewPrefix());
        var store = Reserving(replica);
        var now = replica.Time.GetUtcNow();
        await CorrectAsync(replica, await store.ReserveAsync(Key, 1_000, 0.2, 0, now, default), remaining: 10_000, limit: 10_000, reset: TimeSpan.FromSeconds(30));

        // 9,000 can never leave the 2,000 kept: it goes on a full budget (the replica's view admits it then), never after
        // other spends, and never into room promised to foreground callers.
        (await store.ReserveAsync(Key, 9_000, 0.2, 0.1, now, default)).Status.Should().Be(BackendReservationStatus.Refused, "1,000 is promised to foreground callers");
        (await store.ReserveAsync(Key, 9_000, 0.2, 0, now, default)).Status.Should().Be(BackendReservationStatus.Granted);
        (await store.ReserveAsync(Key, 9_000, 0.2, 0, now, default)).Status.Should().Be(BackendReservationStatus.Refused, "the budget is no longer full");
    }

    [Fact]
    public async Task A_background_reservation_of_unknown_cost_is_held_by_the_token_headroom_as_in_the_replica_view()
    {
        await using var replica = await StartReplicaAsync(_redis.Configuration, NewPrefix());
        var store = Reserving(replica);
        var now = replica.Time.GetUtcNow();
        await CorrectAsync(replica, await store.ReserveAsync(Key, 1_000, 0, 0, now, default), remaining: 10_000, limit: 10_000, reset: TimeSpan.FromSeconds(30));
        (await store.ReserveAsync(Key, 8_500, 0, 0, now, default)).Status.Should().Be(BackendReservationStatus.Granted);

        (await store.ReserveAsync(Key, 0, 0.2, 0, now, default)).Status.Should().Be(BackendReservationStatus.Refused, "1,500 left is inside the 2,000 kept, whatever the cost");
        (await store.ReserveAsync(Key, 1_000, 0, 0, now, default)).Status.Should().Be(BackendReservationStatus.Granted, "a foreground request may use the headroom");
    }

    [Fact]
    public async Task A_background_reservation_leaves_free_the_foreground_demand_every_replica_is_expected_to_spend_until_the_reset()
    {
        var prefix = NewPrefix();
        await using var replica = await StartReplicaAsync(_redis.Configuration, prefix);
        var store = Reserving(replica);
        var now = replica.Time.GetUtcNow();
        await using var peer = await ConnectionMultiplexer.ConnectAsync(_redis.Configuration);
        var database = peer.GetDatabase();
        var key = new RedisStoreLayout(prefix, prefix + "events").ReservationKeyOf(Key);
        await CorrectAsync(replica, await store.ReserveAsync(Key, 1_000, 0.2, 0, now, default), remaining: 10_000, limit: 10_000, reset: TimeSpan.FromSeconds(30));

        (await store.ReserveAsync(Key, 3_000, 0, 0, now, default)).Status.Should().Be(BackendReservationStatus.Granted);
        ((long)await database.HashGetAsync(key, "tfp")).Should().Be(3_000, "a foreground reservation counts towards the foreground's peak: the most within one second");
        var early = await store.ReserveAsync(Key, 1, 0.2, 0, now, default);
        early.Status.Should().Be(BackendReservationStatus.Refused, "the foreground can spend 3,000 in each of the 30 seconds left, more than the budget");
        early.RetryAfter.Should().BeGreaterThan(TimeSpan.FromSeconds(25)).And.BeLessThanOrEqualTo(TimeSpan.FromSeconds(29),
            "one second at the peak leaves it room beyond the 3,000 reserved and the headroom: the window's last second");

        // Half a second left (the window's end moved on the server's clock): one second at the peak is expected.
        var serverMs = await ServerMillisecondsAsync(database);
        await database.HashSetAsync(key, [new("te", (serverMs + 500).ToString(CultureInfo.InvariantCulture)), new("tw", "30000")]);
        (await store.ReserveAsync(Key, 2_001, 0.2, 0, now, default)).Status.Should().Be(BackendReservationStatus.Refused, "3,000 reserved, 3,000 expected, 2,000 the headroom");
        (await store.ReserveAsync(Key, 2_000, 0.2, 0, now, default)).Status.Should().Be(BackendReservationStatus.Granted);

        // The window ends: its peak is the recent one, held through the next window.
        await database.HashSetAsync(key, [new("te", (serverMs - 1).ToString(CultureInfo.InvariantCulture)), new("tw", "30000")]);
        (await store.ReserveAsync(Key, 1, 0.2, 0, now, default)).Status.Should().Be(BackendReservationStatus.Refused, "a whole window at the last one's peak");
        ((long)await database.HashGetAsync(key, "tfk")).Should().Be(3_000);
        ((long)await database.HashGetAsync(key, "tfp")).Should().Be(0);

        // A nightly batch: no foreground for many windows.
        await database.HashSetAsync(key, [new("te", (serverMs - 600_000).ToString(CultureInfo.InvariantCulture)), new("tw", "30000")]);
        (await store.ReserveAsync(Key, 8_000, 0.2, 0, now, default)).Status.Should().Be(BackendReservationStatus.Granted, "quiet windows halve the peak to nothing");
    }

    [Fact]
    public async Task A_background_reservation_leaves_free_the_headroom_the_shared_foreground_demand_and_the_promised_room_together()
    {
        var prefix = NewPrefix();
        await using var replica = await StartReplicaAsync(_redis.Configuration, prefix);
        var store = Reserving(replica);
        var now = replica.Time.GetUtcNow();
        await using var peer = await ConnectionMultiplexer.ConnectAsync(_redis.Configuration);
        var database = peer.GetDatabase();
        var key = new RedisStoreLayout(prefix, prefix + "events").ReservationKeyOf(Key);
        await CorrectAsync(replica, await store.ReserveAsync(Key, 1_000, 0.2, 0, now, default), remaining: 10_000, limit: 10_000, reset: TimeSpan.FromSeconds(30));

        // A recent peak of 3,000 within one second, and half a second left in the window (on the server's clock).
        await database.HashSetAsync(key, [new("tfk", "3000"), new("te", (await ServerMillisecondsAsync(database) + 500).ToString(CultureInfo.InvariantCulture))]);
        (await store.ReserveAsync(Key, 3_000, 0, 0, now, default)).Status.Should().Be(BackendReservationStatus.Granted);

        (await store.ReserveAsync(Key, 1_001, 0.2, 0.1, now, default)).Status.Should().Be(
            BackendReservationStatus.Refused, "of the 7,000 left, 2,000 are the headroom, 3,000 what the foreground can spend in the last half second at its peak and 1,000 promised to foreground callers");
        (await store.ReserveAsync(Key, 1_000, 0.2, 0.1, now, default)).Status.Should().Be(BackendReservationStatus.Granted);
        (await store.ReserveAsync(Key, 6_000, 0, 0, now, default)).Status.Should().Be(BackendReservationStatus.Granted, "a foreground request uses all that was kept");
        (await store.ReserveAsync(Key, 1, 0, 0, now, default)).Status.Should().Be(BackendReservationStatus.Refused, "the budget is spent");
    }

    [Fact]
    public async Task A_request_of_unknown_cost_counts_no_tokens_and_is_never_held_back_by_the_token_budget()
    {
        // The replica view's rule (BackendBudget.TimeUntilAdmitted), and the simulation's counter's (same name).
        await using var replica = await StartReplicaAsync(_redis.Configuration, NewPrefix());
        var store = Reserving(replica);
        var now = replica.Time.GetUtcNow();
        await CorrectAsync(replica, await store.ReserveAsync(Key, 1_000, 0, 0, now, default), remaining: 1_000, limit: 10_000, reset: TimeSpan.FromSeconds(30));

        (await store.ReserveAsync(Key, 0, 0, 0, now, default)).Status.Should().Be(BackendReservationStatus.Granted);
        (await store.ReserveAsync(Key, 0, 0, 0, now, default)).Status.Should().Be(BackendReservationStatus.Granted);
        (await store.ReserveAsync(Key, 1_000, 0, 0, now, default)).Status.Should().Be(BackendReservationStatus.Granted, "the two requests of unknown cost counted no tokens: 1,000 are left");
        (await store.ReserveAsync(Key, 1, 0, 0, now, default)).Status.Should().Be(BackendReservationStatus.Refused);
        (await store.ReserveAsync(Key, 0, 0, 0, now, default)).Status.Should().Be(BackendReservationStatus.Granted, "a spent token budget never holds back a request of unknown cost");
    }

    [Fact]
    public async Task A_request_budget_reported_with_a_limit_of_0_admits_no_request()
    {
        // The replica view's rule (BackendBudgetsTests, same name), and the simulation's counter's (same name).
        var prefix = NewPrefix();
        await using var replica = await StartReplicaAsync(_redis.Configuration, prefix);
        var store = Reserving(replica);
        var now = replica.Time.GetUtcNow();
        var seed = await store.ReserveAsync(Key, 1_000, 0, 0, now, default);
        await CorrectAsync(replica, seed, new BackendReservationReport(null, null, TimeSpan.Zero, 0, 0, TimeSpan.FromSeconds(30), now, now));

        // A foreground request that may claim: no refill can hold it, so it is told the refill and claims nothing.
        var refused = await store.ReserveAsync(Key, 1_000, 0, 0, 42, now, default);
        refused.Status.Should().Be(BackendReservationStatus.Refused);
        refused.HoldsClaim.Should().BeFalse();
        refused.RetryAfter.Should().BeGreaterThan(TimeSpan.FromSeconds(20)).And.BeLessThanOrEqualTo(TimeSpan.FromSeconds(30), "until the refill");
        (await store.ReserveAsync(Key, 0, 0, 0, now, default)).Status.Should().Be(BackendReservationStatus.Refused, "a request of unknown cost is still one request");
        await using var peer = await ConnectionMultiplexer.ConnectAsync(_redis.Configuration);
        var budget = new RedisStoreLayout(prefix, prefix + "events").ReservationKeyOf(Key);
        (await peer.GetDatabase().KeyExistsAsync(RedisStoreLayout.ClaimsKeyOf(budget))).Should().BeFalse("nothing was claimed");
    }

    [Fact]
    public async Task A_foreground_demand_a_peer_wrote_beyond_the_limit_holds_background_work_off_as_the_limit_would_and_no_longer()
    {
        var prefix = NewPrefix();
        await using var replica = await StartReplicaAsync(_redis.Configuration, prefix);
        var store = Reserving(replica);
        var now = replica.Time.GetUtcNow();
        await using var peer = await ConnectionMultiplexer.ConnectAsync(_redis.Configuration);
        var database = peer.GetDatabase();
        var key = new RedisStoreLayout(prefix, prefix + "events").ReservationKeyOf(Key);
        await CorrectAsync(replica, await store.ReserveAsync(Key, 1_000, 0, 0, now, default), remaining: 10_000, limit: 10_000, reset: TimeSpan.FromSeconds(30));

        // 2^50 tokens spent by the foreground within one second, this window and the last: a budget of 10,000 never
        // spends more than 10,000.
        await database.HashSetAsync(key, [new("tfp", "1125899906842624"), new("tfk", "1125899906842624")]);
        await EndWindowsAsync(database, key, 2);
        await LateInWindowAsync(store, database, key, now);

        (await store.ReserveAsync(Key, 3_001, 0.2, 0, now, default)).Status.Should().Be(BackendReservationStatus.Refused);
        (await store.ReserveAsync(Key, 3_000, 0.2, 0, now, default)).Status.Should().Be(
            BackendReservationStatus.Granted, "10,000 within one second two windows ago: a peak of 5,000 now, expected in the window's last half second, and 2,000 are the headroom");
    }

    [Fact]
    public async Task A_foreground_request_larger_than_the_whole_budget_counts_as_its_limit_in_the_foreground_demand()
    {
        // The replica view's rule (BackgroundHeadroomTests, same name), and the simulation's counter's (same name).
        var prefix = NewPrefix();
        await using var replica = await StartReplicaAsync(_redis.Configuration, prefix);
        var store = Reserving(replica);
        var now = replica.Time.GetUtcNow();
        await using var peer = await ConnectionMultiplexer.ConnectAsync(_redis.Configuration);
        var database = peer.GetDatabase();
        var key = new RedisStoreLayout(prefix, prefix + "events").ReservationKeyOf(Key);
        await CorrectAsync(replica, await store.ReserveAsync(Key, 1_000, 0, 0, now, default), remaining: 10_000, limit: 10_000, reset: TimeSpan.FromSeconds(30));
        (await store.ReserveAsync(Key, 1_000_000, 0, 0, now, default)).Status.Should().Be(BackendReservationStatus.Granted, "only the backend can judge it");

        await EndWindowsAsync(database, key, 2);
        await LateInWindowAsync(store, database, key, now);

        (await store.ReserveAsync(Key, 3_001, 0.2, 0, now, default)).Status.Should().Be(BackendReservationStatus.Refused);
        (await store.ReserveAsync(Key, 3_000, 0.2, 0, now, default)).Status.Should().Be(
            BackendReservationStatus.Granted, "at most 10,000 within one second two windows ago: a peak of 5,000 now, expected in the window's last half second, and 2,000 are the headroom");
    }

    [Fact]
    public async Task Whatever_a_peer_wrote_into_the_key_a_reservation_never_throws_and_the_key_heals()
    {
        var prefix = NewPrefix();
        await using var replica = await StartReplicaAsync(_redis.Configuration, prefix);
        var store = Reserving(replica);
        var now = replica.Time.GetUtcNow();
        await using var peer = await ConnectionMultiplexer.ConnectAsync(_redis.Configuration);
        var database = peer.GetDatabase();
        var key = new RedisStoreLayout(prefix, prefix + "events").ReservationKeyOf(Key);

        await database.StringSetAsync(key, "not a hash");
        var overString = await store.ReserveAsync(Key, 100, 0, 0, now, default);
        await database.KeyDeleteAsync(key);
        await database.HashSetAsync(key, [new("tl", "lots"), new("tv", "-7"), new("te", "99999999999999999999"), new("tw", "NaN"), new("n", "1e300"), new("c", "{}"), new("rl", "3"), new("rv", "2.5")]);
        var overGarbage = await store.ReserveAsync(Key, 100, double.NaN, 0, now, default);
        store.Correct(overGarbage, new BackendReservationReport(-5, long.MaxValue, TimeSpan.MaxValue, 3, -1, TimeSpan.FromDays(-1), now, now));
        store.Release(overGarbage);
        await Eventually.HoldsAsync(() => replica.RedisStore.Reservations!.Flushed >= 2, Flushed, "the correction and the release reach Redis");

        overString.Status.Should().Be(BackendReservationStatus.Unknown);
        overString.IsCounted.Should().BeTrue("the string was replaced by a budget");
        overGarbage.Status.Should().NotBe(BackendReservationStatus.Refused, "a limit that is not a number is no limit");
        (await database.KeyTypeAsync(key)).Should().Be(RedisType.Hash);
        (await database.KeyTimeToLiveAsync(key)).Should().NotBeNull("a healed key still expires");
        replica.RedisStore.IsInOutage.Should().BeFalse("garbage is no outage");
    }

    [Fact]
    public async Task Whatever_a_peer_wrote_into_the_foreground_demand_and_release_fields_reads_as_none_and_never_throws()
    {
        // The fields of the peak rule (tfq/tfe/tfp/tfk, rfq/rfe/rfp/rfk) and of releases (tp/rp, tg/rg), as an older or
        // broken peer might leave them: not numbers, out of bounds, infinite.
        var prefix = NewPrefix();
        await using var replica = await StartReplicaAsync(_redis.Configuration, prefix);
        var store = Reserving(replica);
        var now = replica.Time.GetUtcNow();
        await using var peer = await ConnectionMultiplexer.ConnectAsync(_redis.Configuration);
        var database = peer.GetDatabase();
        var key = new RedisStoreLayout(prefix, prefix + "events").ReservationKeyOf(Key);
        await CorrectAsync(replica, await store.ReserveAsync(Key, 1_000, 0.2, 0, now, default), remaining: 10_000, limit: 10_000, reset: TimeSpan.FromSeconds(30));
        await database.HashSetAsync(key, [
            new("tfq", "lots"), new("tfe", "-1"), new("tfp", "NaN"), new("tfk", "-inf"), new("rfq", "inf"), new("rfe", "99999999999999999999"),
            new("rfp", "-3"), new("rfk", "{}"), new("tp", "2.5e300"), new("rp", "-1"), new("tg", "x"), new("rg", "1e400")]);

        var background = await store.ReserveAsync(Key, 4_000, 0.2, 0, now, default);
        var foreground = await store.ReserveAsync(Key, 100, 0, 0, now, default);
        await ReleaseAsync(replica, foreground);
        await CorrectAsync(replica, background, remaining: 6_000, limit: 10_000, reset: TimeSpan.FromSeconds(29));

        background.Status.Should().Be(BackendReservationStatus.Granted, "no foreground demand was read from the garbage: 1,000 + 4,000 leave the 2,000 of headroom");
        foreground.Status.Should().Be(BackendReservationStatus.Granted);
        ((long)await database.HashGetAsync(key, "tfp")).Should().Be(100, "the foreground's peak starts again from what it spent");
        ((long)await database.HashGetAsync(key, "rfp")).Should().Be(1);
        replica.RedisStore.IsInOutage.Should().BeFalse("garbage is no outage");
    }

    [Fact]
    public async Task Two_replicas_with_completions_in_flight_pay_no_backend_429_with_reservations()
    {
        await using var load = await LoadAsync(_redis.Configuration, reservations: true);

        load.Failed.Should().Be(0);
        load.Primary.Throttled.Should().Be(0, "every replica reserved before it sent");
        load.Primary.Admitted.Should().Be(10, "the first request and the 9 that fit its 10,000 tokens");
        load.Secondary.Admitted.Should().Be(21);
    }

    [Fact]
    public async Task Two_replicas_with_completions_in_flight_pay_backend_429s_without_reservations()
    {
        await using var load = await LoadAsync(_redis.Configuration, reservations: false);

        load.Failed.Should().Be(0, "each 429 fails over to the secondary");
        load.Primary.Throttled.Should().BePositive("a replica does not see the other's spend until its answers come back");
        load.Primary.Admitted.Should().Be(10);
    }

    [Fact]
    public async Task Redis_stopped_during_reservations_fails_no_request_and_reservations_resume_when_it_returns()
    {
        var prefix = NewPrefix();
        await using var primary = await TokenBudgetBackend.StartAsync(limit: 10_000_000, TimeSpan.FromMinutes(1), TimeSpan.FromMilliseconds(200));
        await using var secondary = await TokenBudgetBackend.StartAsync(limit: null, TimeSpan.FromMinutes(1), TimeSpan.FromMilliseconds(200));
        await using var hostA = await StartReplicaAsync(_redis.Configuration, prefix, primary, secondary);
        await using var hostB = await StartReplicaAsync(_redis.Configuration, prefix, primary, secondary);
        var (clientA, clientB) = (hostA.CreateClient(), hostB.CreateClient());
        var statuses = new List<HttpStatusCode>();

        var before = Wave(clientA, clientB, 20);
        _redis.Kill();
        try
        {
            statuses.AddRange(await before);
            await Eventually.HoldsAsync(() => hostA.RedisStore.IsInOutage && hostB.RedisStore.IsInOutage, TimeSpan.FromSeconds(10), "both replicas notice the outage");
            statuses.AddRange(await Wave(clientA, clientB, 20).WaitAsync(TimeSpan.FromSeconds(30)));
        }
        finally
        {
            _redis.Start();
        }

        await Eventually.HoldsAsync(() => !hostA.RedisStore.IsInOutage && !hostB.RedisStore.IsInOutage, TimeSpan.FromSeconds(15), "both replicas share again");
        statuses.AddRange(await Wave(clientA, clientB, 20));
        statuses.Should().HaveCount(60).And.OnlyContain(status => status == HttpStatusCode.OK);
        await using var inspector = await ConnectionMultiplexer.ConnectAsync(_redis.Configuration);
        var key = new RedisStoreLayout(prefix, prefix + "events").ReservationKeyOf(new BackendStateKey($"backend-1@{primary.BaseAddress.GetLeftPart(UriPartial.Authority)}"));
        ((long)await inspector.GetDatabase().HashGetAsync(key, "n")).Should().BePositive("reservations resumed on the restarted Redis");
    }

    [Fact]
    public async Task A_budget_lost_in_a_redis_restart_without_persistence_starts_fresh_and_the_next_answer_corrects_it()
    {
        await using var replica = await StartReplicaAsync(_redis.Configuration, NewPrefix());
        var store = Reserving(replica);
        var now = replica.Time.GetUtcNow();
        await CorrectAsync(replica, await store.ReserveAsync(Key, 1_000, 0, 0, now, default), remaining: 1_000, limit: 10_000, reset: TimeSpan.FromSeconds(30));
        (await store.ReserveAsync(Key, 1_001, 0, 0, now, default)).Status.Should().Be(BackendReservationStatus.Refused, "1,000 are left before the restart");

        _redis.Kill();
        _redis.Start();
        BackendReservation fresh = default;
        await Eventually.HoldsAsync(
            async () => (fresh = await store.ReserveAsync(Key, 5_000, 0, 0, now, default)).IsCounted,
            TimeSpan.FromSeconds(15),
            "the replica reserves on the restarted Redis again (until it has reconnected, its own view decides)");
        fresh.Status.Should().Be(BackendReservationStatus.Unknown, "the restarted Redis holds no budget: the reservation is counted, and its answer will tell");
        await CorrectAsync(replica, fresh, remaining: 4_000, limit: 10_000, reset: TimeSpan.FromSeconds(30));

        (await store.ReserveAsync(Key, 4_001, 0, 0, now, default)).Status.Should().Be(BackendReservationStatus.Refused, "the answer reported 4,000 left");
        (await store.ReserveAsync(Key, 4_000, 0, 0, now, default)).Status.Should().Be(BackendReservationStatus.Granted);
    }

    [Fact]
    public async Task The_shared_foreground_demand_lost_with_the_key_holds_no_background_work_off_once_an_answer_reseeds_the_budget()
    {
        var prefix = NewPrefix();
        await using var replica = await StartReplicaAsync(_redis.Configuration, prefix);
        var store = Reserving(replica);
        var now = replica.Time.GetUtcNow();
        await using var peer = await ConnectionMultiplexer.ConnectAsync(_redis.Configuration + ",allowAdmin=true");
        var database = peer.GetDatabase();
        var key = new RedisStoreLayout(prefix, prefix + "events").ReservationKeyOf(Key);
        await CorrectAsync(replica, await store.ReserveAsync(Key, 1_000, 0, 0, now, default), remaining: 10_000, limit: 10_000, reset: TimeSpan.FromSeconds(30));
        await database.HashSetAsync(key, [new("tfs", "0"), new("tfr", "6000")]);
        (await store.ReserveAsync(Key, 8_000, 0.2, 0, now, default)).Status.Should().Be(BackendReservationStatus.Refused, "6,000 are the foreground's expected demand");

        await database.ExecuteAsync("FLUSHDB");
        var fresh = await store.ReserveAsync(Key, 1_000, 0.2, 0, now, default);
        fresh.Status.Should().Be(BackendReservationStatus.Unknown, "the budget was lost: the replica's own view decides");
        await CorrectAsync(replica, fresh, remaining: 9_000, limit: 10_000, reset: TimeSpan.FromSeconds(30));

        (await store.ReserveAsync(Key, 7_000, 0.2, 0, now, default)).Status.Should().Be(BackendReservationStatus.Granted, "nothing is expected of the foreground any more: 9,000 less the 2,000 headroom");
        (await store.ReserveAsync(Key, 1, 0.2, 0, now, default)).Status.Should().Be(BackendReservationStatus.Refused, "the headroom stays the foreground's");
        ((long)await database.HashGetAsync(key, "tfr")).Should().Be(0, "the lost demand is not restored, and background reservations add none");
    }

    [Fact]
    public async Task While_redis_is_down_the_replicas_own_view_keeps_background_work_to_the_room_outside_the_headroom_and_no_request_fails()
    {
        await using var primary = await TokenBudgetBackend.StartAsync(limit: 10_000, TimeSpan.FromMinutes(1), TimeSpan.FromMilliseconds(50));
        await using var secondary = await TokenBudgetBackend.StartAsync(limit: null, TimeSpan.FromMinutes(1), TimeSpan.FromMilliseconds(50));
        await using var host = await StartReplicaAsync(_redis.Configuration, NewPrefix(), primary, secondary);
        var client = host.CreateClient();
        await TokenBudgetBackend.WarmUpAsync(client);
        (await SendAsync(client, 1_000, background: false)).Should().Be(HttpStatusCode.OK, "the answer tells the replica's view: 9,000 left");

        var statuses = new List<HttpStatusCode>();
        _redis.Kill();
        try
        {
            statuses.Add(await SendAsync(client, 7_001, background: true));
            statuses.Add(await SendAsync(client, 7_000, background: true));
            statuses.Add(await SendAsync(client, 2_000, background: false));
        }
        finally
        {
            _redis.Start();
        }

        statuses.Should().Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK], "a reservation that cannot reach Redis fails open");
        (primary.Admitted, primary.Throttled).Should().Be((3, 0), "the view kept 7,001 off the 9,000 left (2,000 are the headroom) and admitted 7,000, then the foreground's 2,000");
        secondary.Admitted.Should().Be(1, "the background request that did not fit went to the next tier");
    }

    [Fact]
    public async Task A_shared_budget_replicated_before_a_failover_still_refuses_on_the_promoted_replica_what_does_not_fit()
    {
        using var group = new RedisReplicationGroup(withSentinels: false);
        var prefix = NewPrefix();
        await using var replica = await StartReplicaAsync(group.PlainConfiguration, prefix);
        var store = Reserving(replica);
        var now = replica.Time.GetUtcNow();
        await CorrectAsync(replica, await store.ReserveAsync(Key, 1_000, 0, 0, now, default), remaining: 1_000, limit: 10_000, reset: TimeSpan.FromSeconds(30));
        (await store.ReserveAsync(Key, 1_001, 0, 0, now, default)).Status.Should().Be(BackendReservationStatus.Refused, "1,000 are left");
        group.WaitForReplication(primary: 0, replica: 1);

        group.Kill(0);
        group.PromoteByHand(1);

        // A replica that reaches only the promoted node: how a multiplexer follows a failover is RedisFailoverTests'
        // subject (Sentinel, a moving DNS name, a cluster); here, what the promoted node holds once it had everything
        // (an asynchronous replica may lose the last writes in a real failover: Redis's, not the store's, guarantee).
        // Before, "WAIT 1" from redis-cli's own connection waited for nothing, and 2 runs in 6 lost the correction.
        await using var afterFailover = await StartReplicaAsync($"127.0.0.1:{group.NodePorts[1]},connectTimeout=2000", prefix);
        var promoted = Reserving(afterFailover);
        (await promoted.ReserveAsync(Key, 1_001, 0, 0, now, default)).Status.Should().Be(BackendReservationStatus.Refused, "the replicated count, not a fresh budget");
        (await promoted.ReserveAsync(Key, 1_000, 0, 0, now, default)).Status.Should().Be(BackendReservationStatus.Granted);
        (await promoted.ReserveAsync(Key, 1, 0, 0, now, default)).Status.Should().Be(BackendReservationStatus.Refused);
    }

    internal static string NewPrefix() => $"test:{Guid.NewGuid():N}:";

    internal static IBackendReservationStore Reserving(Replica replica) => (IBackendReservationStore)replica.Store;

    /// <summary>Two replicas, a primary of 10,000 tokens per minute and an unlimited secondary, both answering after 1.5 s: one request to learn the budget, then 30 at once (15 per replica), 1,000 tokens each.</summary>
    internal static async Task<LoadResult> LoadAsync(string configuration, bool reservations)
    {
        var prefix = NewPrefix();
        var primary = await TokenBudgetBackend.StartAsync(limit: 10_000, TimeSpan.FromMinutes(1), TimeSpan.FromSeconds(1.5));
        var secondary = await TokenBudgetBackend.StartAsync(limit: null, TimeSpan.FromMinutes(1), TimeSpan.FromSeconds(1.5));
        var hostA = await StartReplicaAsync(configuration, prefix, reservations, primary, secondary);
        var hostB = await StartReplicaAsync(configuration, prefix, reservations, primary, secondary);
        var (clientA, clientB) = (hostA.CreateClient(), hostB.CreateClient());

        var failed = (await Wave(clientA, clientA, 1)).Count(status => status != HttpStatusCode.OK);
        if (reservations)
        {
            await Eventually.HoldsAsync(() => hostA.RedisStore.Reservations!.Flushed >= 1, Flushed, "the first answer corrects the shared budget");
        }

        failed += (await Wave(clientA, clientB, 30)).Count(status => status != HttpStatusCode.OK);
        return new LoadResult(primary, secondary, hostA, hostB, failed);
    }

    internal static Task<Replica> StartReplicaAsync(string configuration, string prefix, params TokenBudgetBackend[] backends)
        => StartReplicaAsync(configuration, prefix, reservations: true, backends);

    /// <summary>
    /// A replica whose client routes over <paramref name="backends"/> by priority, estimating each request's cost from
    /// its <see cref="TokenBudgetBackend.CostHeader"/>. Reservations wait up to 1 s: the test machine is shared, and a
    /// reservation that times out is admitted by the replica's own view, which is not what these tests measure.
    /// </summary>
    private static Task<Replica> StartReplicaAsync(string configuration, string prefix, bool reservations, params TokenBudgetBackend[] backends)
        => Replica.StartAsync(configuration, prefix, DateTimeOffset.UtcNow, services =>
        {
            services.Configure<PriorityRoutingRedisStoreOptions>(options =>
            {
                options.Reservations = reservations;
                options.ReservationTimeout = TimeSpan.FromSeconds(1);
            });
            services.AddHttpClient(RoutedHost.ClientName)
                .AddResilienceHandler("priority", (builder, context) => builder.AddPriorityRouting(new PriorityRoutingStrategyOptions
                {
                    StateStore = context.ServiceProvider.GetRequiredService<IBackendStateStore>(),
                    Backends = [.. backends.Select((backend, index) => new PriorityBackend
                    {
                        Name = $"backend-{index + 1}",
                        BaseAddress = backend.BaseAddress,
                        Priority = index + 1,
                    })],
                    RequestCost = request => long.Parse(request.Headers.GetValues(TokenBudgetBackend.CostHeader).Single(), System.Globalization.CultureInfo.InvariantCulture),
                }));
        });

    /// <summary>Sends <paramref name="count"/> requests of 1,000 tokens at once, alternating between the two clients.</summary>
    private static async Task<HttpStatusCode[]> Wave(HttpClient clientA, HttpClient clientB, int count)
        => await Task.WhenAll(Enumerable.Range(0, count).Select(async i =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, RoutedHost.AnyPath) { Content = new StringContent("{}") };
            request.Headers.Add(TokenBudgetBackend.CostHeader, "1000");
            using var response = await (i % 2 == 0 ? clientA : clientB).SendAsync(request);
            return response.StatusCode;
        }));

    private static async Task<HttpStatusCode> SendAsync(HttpClient client, long cost, bool background)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, RoutedHost.AnyPath) { Content = new StringContent("{}") };
        request.Headers.Add(TokenBudgetBackend.CostHeader, cost.ToString(CultureInfo.InvariantCulture));
        request.Options.Set(PriorityRoutingRequestOptions.Hints, new PriorityRoutingHints { Background = background });
        using var response = await client.SendAsync(request);
        return response.StatusCode;
    }

    /// <summary>Moves the token window's end <paramref name="windows"/> windows of 30 s into the past on the server's clock: the next call ends them.</summary>
    private static async Task EndWindowsAsync(IDatabase database, RedisKey key, int windows)
    {
        var time = await database.ExecuteAsync("TIME");
        var serverMs = long.Parse(((RedisResult[])time!)[0].ToString()!, CultureInfo.InvariantCulture) * 1000;
        var end = serverMs - 1 - ((windows - 1) * 30_000L);
        await database.HashSetAsync(key, [new("te", end.ToString(CultureInfo.InvariantCulture)), new("tw", "30000")]);
    }

    /// <summary>
    /// Rolls the budget into its new window (a background reservation refused there: early in a window the foreground's
    /// peak keeps it all), then moves the window's end half a second ahead on the server's clock.
    /// </summary>
    private static async Task LateInWindowAsync(IBackendReservationStore store, IDatabase database, RedisKey key, DateTimeOffset now)
    {
        (await store.ReserveAsync(Key, 1, 0.2, 0, now, default)).Status.Should().Be(BackendReservationStatus.Refused, "early in the window the foreground's peak keeps it all");
        await database.HashSetAsync(key, [new("te", (await ServerMillisecondsAsync(database) + 500).ToString(CultureInfo.InvariantCulture))]);
    }

    /// <summary>The Redis server's clock, in milliseconds (the scripts' <c>now</c>).</summary>
    internal static async Task<long> ServerMillisecondsAsync(IDatabase database)
    {
        var time = (RedisResult[])(await database.ExecuteAsync("TIME"))!;
        return (long.Parse(time[0].ToString()!, CultureInfo.InvariantCulture) * 1000) + (long.Parse(time[1].ToString()!, CultureInfo.InvariantCulture) / 1000);
    }

    private static async Task ReleaseAsync(Replica replica, BackendReservation reservation)
    {
        var flushed = replica.RedisStore.Reservations!.Flushed;
        Reserving(replica).Release(reservation);
        await Eventually.HoldsAsync(() => replica.RedisStore.Reservations!.Flushed > flushed, Flushed, "the release reaches Redis");
    }

    private static Task CorrectAsync(Replica replica, BackendReservation reservation, long remaining, long limit, TimeSpan reset)
    {
        var now = replica.Time.GetUtcNow();
        return CorrectAsync(replica, reservation, new BackendReservationReport(remaining, limit, reset, null, null, TimeSpan.Zero, now, now));
    }

    private static async Task CorrectAsync(Replica replica, BackendReservation reservation, BackendReservationReport report)
    {
        var flushed = replica.RedisStore.Reservations!.Flushed;
        Reserving(replica).Correct(reservation, report);
        await Eventually.HoldsAsync(() => replica.RedisStore.Reservations!.Flushed > flushed, Flushed, "the correction reaches Redis");
    }

    internal sealed record LoadResult(TokenBudgetBackend Primary, TokenBudgetBackend Secondary, Replica HostA, Replica HostB, int Failed) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await HostA.DisposeAsync();
            await HostB.DisposeAsync();
            await Primary.DisposeAsync();
            await Secondary.DisposeAsync();
        }
    }
}
