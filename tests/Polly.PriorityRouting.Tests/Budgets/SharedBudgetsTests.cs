using System.Net;
using Microsoft.Extensions.Time.Testing;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Budgets;

/// <summary>
/// How the budget view merges what answers report — its own and, through an <see cref="IBackendBudgetStore"/>, other
/// processes' — with what it spent: the rules every replica relies on to admit against one picture of a backend.
/// </summary>
public class SharedBudgetsTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan MaxCooldown = TimeSpan.FromMinutes(5);
    private static readonly BackendStateKey Key = RoutingHarness.Key("a");

    [Fact]
    public void A_budget_a_peer_saw_spent_holds_this_process_back()
    {
        var (store, time) = (new RecordingBudgetStore(), new FakeTimeProvider(Now));
        var budgets = Subscribed(store, time);
        budgets.Observe(Key, Tokens(remaining: 50_000, reset: "10s"), Now, MaxCooldown);

        store.Deliver(Key, Observed(remaining: 4_000, resetAt: Now.AddSeconds(10)));

        budgets.CanAdmit(Key, 4_000, Now).Should().BeTrue();
        budgets.CanAdmit(Key, 4_001, Now).Should().BeFalse();
        budgets.TimeUntilAdmitted(Key, 6_000, Now).Should().Be(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public void A_report_arriving_late_never_raises_the_budget_within_its_window()
    {
        var (store, time) = (new RecordingBudgetStore(), new FakeTimeProvider(Now));
        var budgets = Subscribed(store, time);
        store.Deliver(Key, Observed(remaining: 3_000, resetAt: Now.AddSeconds(10)));

        // A peer's older report, then this process's own answer to a request admitted before the peer's.
        store.Deliver(Key, Observed(remaining: 9_000, resetAt: Now.AddSeconds(10)));
        budgets.Observe(Key, Tokens(remaining: 8_000, reset: "10s"), Now, MaxCooldown);

        budgets.CanAdmit(Key, 3_000, Now).Should().BeTrue();
        budgets.CanAdmit(Key, 3_001, Now).Should().BeFalse("within a window the backend only counts down: the lowest count is the newest");
    }

    [Fact]
    public void A_report_of_a_window_already_over_is_ignored_and_one_of_the_next_window_replaces_the_current()
    {
        var (store, time) = (new RecordingBudgetStore(), new FakeTimeProvider(Now));
        var budgets = Subscribed(store, time);
        budgets.Observe(Key, Tokens(remaining: 5_000, reset: "10s"), Now, MaxCooldown);

        store.Deliver(Key, Observed(remaining: 0, resetAt: Now.AddSeconds(1)));
        budgets.CanAdmit(Key, 5_000, Now).Should().BeTrue("a reset 9 s before the known one is a window already over");

        time.Advance(TimeSpan.FromSeconds(9));
        store.Deliver(Key, Observed(remaining: 90_000, resetAt: Now.AddSeconds(20)));
        budgets.CanAdmit(Key, 90_000, Now.AddSeconds(9)).Should().BeTrue("a reset a whole window later is the next window's report");
    }

    [Fact]
    public void Past_the_reset_the_budget_refills_to_the_limit_and_spends_count_against_it()
    {
        var budgets = new BackendBudgets();
        budgets.Observe(Key, Tokens(remaining: 0, reset: "10s", limit: "100000"), Now, MaxCooldown);
        budgets.CanAdmit(Key, 1, Now.AddSeconds(9)).Should().BeFalse();

        var refilled = Now.AddSeconds(10);
        budgets.CanAdmit(Key, 100_000, refilled).Should().BeTrue();
        budgets.TryTake(Key, 60_000, refilled).Should().BeTrue();

        budgets.CanAdmit(Key, 40_000, refilled).Should().BeTrue();
        budgets.CanAdmit(Key, 40_001, refilled).Should().BeFalse("what this process sent since the reset counts before any answer reports it");
        budgets.TimeUntilAdmitted(Key, 40_001, refilled).Should().Be(TimeSpan.FromSeconds(10), "the assumed window ends one window later");
    }

    [Fact]
    public void With_peers_each_process_keeps_the_background_headroom_of_what_it_may_spend()
    {
        var store = new RecordingBudgetStore { PeerCount = 3 };
        var budgets = Subscribed(store, new FakeTimeProvider(Now));
        budgets.Observe(Key, Tokens(remaining: 0, reset: "10s", limit: "100000"), Now, MaxCooldown);
        var refilled = Now.AddSeconds(10);

        budgets.TryTake(Key, 10_000, refilled, headroom: 0.2).Should().BeTrue();
        budgets.CanAdmit(Key, 10_000, refilled, headroom: 0.2).Should().BeTrue("a fifth of this process's quarter, 5,000, is kept");
        budgets.CanAdmit(Key, 10_001, refilled, headroom: 0.2).Should().BeFalse();

        budgets.Observe(Key, Tokens(remaining: 70_000, reset: "10s", limit: "100000"), refilled, MaxCooldown);
        budgets.CanAdmit(Key, 50_000, refilled, headroom: 0.2).Should().BeTrue("a reported count is the backend's: a fifth of its whole limit is kept");
        budgets.CanAdmit(Key, 50_001, refilled, headroom: 0.2).Should().BeFalse();
    }

    [Fact]
    public void With_peers_a_refill_nobody_reported_yet_is_shared_among_them()
    {
        var store = new RecordingBudgetStore { PeerCount = 3 };
        var budgets = Subscribed(store, new FakeTimeProvider(Now));
        budgets.Observe(Key, Tokens(remaining: 0, reset: "10s", limit: "100000"), Now, MaxCooldown);
        var refilled = Now.AddSeconds(10);

        budgets.CanAdmit(Key, 25_000, refilled).Should().BeTrue();
        budgets.TryTake(Key, 20_000, refilled).Should().BeTrue();
        budgets.CanAdmit(Key, 5_000, refilled).Should().BeTrue();
        budgets.CanAdmit(Key, 5_001, refilled).Should().BeFalse("four processes each take a quarter until an answer reports the window");
        budgets.CanAdmit(Key, 30_000, refilled).Should().BeTrue("a request larger than the share is left to the backend");

        budgets.Observe(Key, Tokens(remaining: 70_000, reset: "10s", limit: "100000"), refilled, MaxCooldown);
        budgets.CanAdmit(Key, 70_000, refilled).Should().BeTrue("the window's first report replaces the share");
    }

    [Fact]
    public void Own_spends_hold_until_an_own_answer_reports_them_not_a_peers()
    {
        var (store, time) = (new RecordingBudgetStore(), new FakeTimeProvider(Now));
        var budgets = Subscribed(store, time);
        budgets.Observe(Key, Tokens(remaining: 10_000, reset: "10s"), Now, MaxCooldown);
        budgets.TryTake(Key, 4_000, Now).Should().BeTrue();

        store.Deliver(Key, Observed(remaining: 9_000, resetAt: Now.AddSeconds(10)));
        budgets.CanAdmit(Key, 5_000, Now).Should().BeTrue();
        budgets.CanAdmit(Key, 5_001, Now).Should().BeFalse("a peer's count need not include this process's request in flight");

        budgets.Observe(Key, Tokens(remaining: 8_500, reset: "10s"), Now, MaxCooldown);
        budgets.CanAdmit(Key, 8_500, Now).Should().BeTrue("this process's own answer includes its spends");
    }

    [Fact]
    public void The_view_publishes_its_picture_at_each_own_answer_and_nothing_at_a_peers_report()
    {
        var (store, time) = (new RecordingBudgetStore(), new FakeTimeProvider(Now));
        var budgets = Subscribed(store, time);

        budgets.Observe(Key, Tokens(remaining: 7_000, reset: "10s", limit: "100000"), Now, MaxCooldown);
        store.Deliver(Key, Observed(remaining: 2_000, resetAt: Now.AddSeconds(10)));
        budgets.Observe(Key, Headers(("x-ratelimit-remaining-requests", "40"), ("x-ratelimit-reset-requests", "1s")), Now, MaxCooldown);

        store.Published.Should().Equal(
            (Key, new BackendBudgetObservation(7_000, 100_000, Now.AddSeconds(10), null, null, default)),
            (Key, new BackendBudgetObservation(2_000, 100_000, Now.AddSeconds(10), 40, null, Now.AddSeconds(1))));
    }

    [Fact]
    public void A_peer_report_without_a_count_or_of_a_passed_reset_changes_nothing()
    {
        var (store, time) = (new RecordingBudgetStore(), new FakeTimeProvider(Now));
        var budgets = Subscribed(store, time);

        store.Deliver(Key, new BackendBudgetObservation(null, 100_000, Now.AddSeconds(10), null, null, default));
        store.Deliver(Key, Observed(remaining: 0, resetAt: Now));
        store.Deliver(Key, new BackendBudgetObservation(-5, null, Now.AddSeconds(10), null, null, default));

        budgets.Count.Should().Be(0);
        budgets.CanAdmit(Key, 1_000_000, Now).Should().BeTrue();
    }

    [Fact]
    public void Peer_reports_are_bounded_like_answers()
    {
        var (store, time) = (new RecordingBudgetStore(), new FakeTimeProvider(Now));
        var budgets = Subscribed(store, time);

        for (var i = 0; i < BackendBudgets.MaxEntries + 10; i++)
        {
            store.Deliver(Key.ForPartition("p" + i), Observed(remaining: 0, resetAt: Now.AddSeconds(5)));
        }

        budgets.Count.Should().Be(BackendBudgets.MaxEntries);
    }

    [Fact]
    public void Once_a_peers_keys_have_expired_budgets_work_again_for_new_keys()
    {
        var (store, time) = (new RecordingBudgetStore(), new FakeTimeProvider(Now));
        var budgets = Subscribed(store, time);
        for (var i = 0; i < BackendBudgets.MaxEntries; i++)
        {
            store.Deliver(Key.ForPartition("p" + i), Observed(remaining: 0, resetAt: Now.AddSeconds(5)));
        }

        budgets.Count.Should().Be(BackendBudgets.MaxEntries);
        time.Advance(TimeSpan.FromSeconds(5));
        store.Deliver(Key, Observed(remaining: 0, resetAt: time.GetUtcNow().AddSeconds(10)));

        budgets.CanAdmit(Key, 1, time.GetUtcNow()).Should().BeFalse("the expired keys were evicted: the new key has a budget");
        budgets.Count.Should().BeLessThanOrEqualTo(BackendBudgets.MaxEntries);
    }

    [Fact]
    public void One_odd_long_reset_does_not_make_later_answers_count_as_a_window_already_over()
    {
        var budgets = new BackendBudgets();
        budgets.Observe(Key, Tokens(remaining: 9_000, reset: "10s", limit: "10000"), Now, MaxCooldown);
        budgets.Observe(Key, Tokens(remaining: 8_000, reset: "5m"), Now.AddSeconds(1), MaxCooldown);

        budgets.Observe(Key, Tokens(remaining: 7_000, reset: "8s"), Now.AddSeconds(2), MaxCooldown);
        budgets.CanAdmit(Key, 7_001, Now.AddSeconds(2)).Should().BeFalse("the answer after the odd one is learned");

        var nextWindow = Now.AddSeconds(10);
        budgets.Observe(Key, Tokens(remaining: 9_500, reset: "10s"), nextWindow, MaxCooldown);
        budgets.CanAdmit(Key, 9_500, nextWindow).Should().BeTrue("the next window is learned as before the odd answer");
        budgets.CanAdmit(Key, 9_501, nextWindow).Should().BeFalse();
        budgets.Promise(Key, 9_000, nextWindow.AddSeconds(10)).Should().Be(nextWindow.AddSeconds(10));
        budgets.Promise(Key, 9_000, nextWindow.AddSeconds(10)).Should().Be(nextWindow.AddSeconds(20), "the window shrank back to 10 s");
    }

    [Fact]
    public void With_peers_each_process_promises_only_its_share_of_a_refill()
    {
        var store = new RecordingBudgetStore { PeerCount = 1 };
        var budgets = Subscribed(store, new FakeTimeProvider(Now));
        budgets.Observe(Key, Tokens(remaining: 0, reset: "10s", limit: "10000"), Now, MaxCooldown);
        var reset = Now.AddSeconds(10);

        budgets.Promise(Key, 4_000, reset).Should().Be(reset);
        budgets.Promise(Key, 1_000, reset).Should().Be(reset);
        budgets.Promise(Key, 1_000, reset).Should().Be(reset.AddSeconds(10), "5,000 of this process's 5,000 are promised at the reset");
    }

    [Fact]
    public void The_view_of_a_sharing_store_subscribes_once_on_the_first_pipelines_clock()
    {
        var store = new RecordingBudgetStore();
        var time = new FakeTimeProvider(Now);

        var view = SharedBackendState.For(store).Budgets;
        view.SubscribeOnce(time);
        SharedBackendState.For(store).Budgets.Should().BeSameAs(view);
        SharedBackendState.For(store).Budgets.SubscribeOnce(TimeProvider.System);
        store.Subscriptions.Should().Be(1);

        time.Advance(TimeSpan.FromHours(1));
        store.Deliver(Key, Observed(remaining: 0, resetAt: time.GetUtcNow().AddSeconds(10)));
        view.CanAdmit(Key, 1, time.GetUtcNow()).Should().BeFalse("the observation was merged on the fake clock, not the system one");
    }

    private static BackendBudgets Subscribed(RecordingBudgetStore store, TimeProvider time)
    {
        var budgets = new BackendBudgets(store);
        budgets.SubscribeOnce(time);
        return budgets;
    }

    private static BackendBudgetObservation Observed(long remaining, DateTimeOffset resetAt) => new(remaining, null, resetAt, null, null, default);

    private static System.Net.Http.Headers.HttpResponseHeaders Tokens(long remaining, string reset, string? limit = null)
        => limit is null
            ? Headers(("x-ratelimit-remaining-tokens", remaining.ToString(System.Globalization.CultureInfo.InvariantCulture)), ("x-ratelimit-reset-tokens", reset))
            : Headers(
                ("x-ratelimit-remaining-tokens", remaining.ToString(System.Globalization.CultureInfo.InvariantCulture)),
                ("x-ratelimit-reset-tokens", reset),
                ("x-ratelimit-limit-tokens", limit));

    private static System.Net.Http.Headers.HttpResponseHeaders Headers(params (string Name, string Value)[] headers)
    {
        var response = new HttpResponseMessage(HttpStatusCode.OK);
        foreach (var (name, value) in headers)
        {
            response.Headers.TryAddWithoutValidation(name, value);
        }

        return response.Headers;
    }

    private sealed class RecordingBudgetStore : IBackendStateStore, IBackendBudgetStore
    {
        private readonly InMemoryBackendStateStore _deadlines = new();
        private Action<BackendStateKey, BackendBudgetObservation>? _subscriber;

        public int PeerCount { get; init; }

        public List<(BackendStateKey Key, BackendBudgetObservation Observation)> Published { get; } = [];

        public int Subscriptions { get; private set; }

        public void PublishBudget(BackendStateKey key, BackendBudgetObservation observation, DateTimeOffset now) => Published.Add((key, observation));

        public void SubscribeToBudgets(Action<BackendStateKey, BackendBudgetObservation> onObservation)
        {
            _subscriber = onObservation;
            Subscriptions++;
        }

        public bool TryGetUnavailability(BackendStateKey key, out BackendUnavailability unavailability) => _deadlines.TryGetUnavailability(key, out unavailability);

        public ValueTask MarkUnavailableAsync(BackendStateKey key, BackendUnavailability unavailability, DateTimeOffset now, CancellationToken cancellationToken)
            => _deadlines.MarkUnavailableAsync(key, unavailability, now, cancellationToken);

        public IReadOnlyList<KeyValuePair<BackendStateKey, BackendUnavailability>> GetEntries(string backend) => _deadlines.GetEntries(backend);

        public void Deliver(BackendStateKey key, BackendBudgetObservation observation) => _subscriber!(key, observation);
    }
}
