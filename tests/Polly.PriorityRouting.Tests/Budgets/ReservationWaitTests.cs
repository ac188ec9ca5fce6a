using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Text;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Budgets;

/// <summary>
/// The wait of <see cref="PriorityRoutingStrategyOptions.MaxQueueWait"/> meeting shared reservations
/// (<see cref="IBackendReservationStore"/>): a caller that every backend's shared budget refused waits in the strategy
/// for the refusal's refill and reserves again, within the bound, through the strategy on a fake clock.
/// </summary>
public class ReservationWaitTests
{
    private static readonly TimeSpan MaxQueueWait = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task A_caller_refused_everywhere_by_a_budget_this_process_never_saw_waits_for_the_refill()
    {
        // A replica that just started: no answer has told it a budget yet, the shared store refuses (its peers spent the window).
        var store = new ReservingStore().Refuse("a", TimeSpan.FromSeconds(3));
        using var h = Harness(store);
        h.Transport.Respond("a", HttpStatusCode.OK);

        var waiting = h.Client.PostAsync("/", Chat(100));
        waiting.IsCompleted.Should().BeFalse("the caller waits for the refusal's refill instead of a 429");
        store.Grant("a");
        h.AdvanceOffContext(TimeSpan.FromSeconds(3));

        using var response = await waiting.WaitAsync(TimeSpan.FromSeconds(30));
        response.StatusCode.Should().Be(HttpStatusCode.OK);
        store.Reserved.Select(r => r.Status).Should().Equal(BackendReservationStatus.Refused, BackendReservationStatus.Granted);
        h.Transport.CountFor("a").Should().Be(1);
    }

    [Fact]
    public async Task A_refusal_whose_refill_lies_beyond_max_queue_wait_is_answered_at_once()
    {
        var store = new ReservingStore().Refuse("a", TimeSpan.FromSeconds(11));
        using var h = Harness(store);

        using var response = await h.Client.PostAsync("/", Chat(100));

        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(11));
        store.Reserved.Should().ContainSingle();
    }

    [Fact]
    public async Task A_caller_refused_again_after_its_refill_waits_once_more_only_within_what_is_left_of_the_bound()
    {
        // Peers took the refill: the store refuses again until the next window, 6 s later; 4 + 6 s is beyond the 10 s bound.
        var store = new ReservingStore().Refuse("a", TimeSpan.FromSeconds(4));
        using var h = Harness(store);

        var waiting = h.Client.PostAsync("/", Chat(100));
        store.Refuse("a", TimeSpan.FromSeconds(7));
        h.AdvanceOffContext(TimeSpan.FromSeconds(4));
        using var response = await waiting.WaitAsync(TimeSpan.FromSeconds(30));

        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(7));
        store.Reserved.Select(r => r.Status).Should().Equal(BackendReservationStatus.Refused, BackendReservationStatus.Refused);
        h.Transport.Requests.Should().BeEmpty();
    }

    [Fact]
    public async Task A_synchronous_caller_refused_everywhere_waits_on_its_own_thread_and_is_sent_after_the_refill()
    {
        var store = new ReservingStore().Refuse("a", TimeSpan.FromSeconds(3));
        using var h = Harness(store);
        h.Transport.Respond("a", HttpStatusCode.OK);

        var waiting = Task.Factory.StartNew(
            () => h.Client.Send(new HttpRequestMessage(HttpMethod.Post, "/") { Content = Chat(100) }),
            CancellationToken.None,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default);
        await WhenWaiting(h);
        store.Grant("a");
        h.AdvanceOffContext(TimeSpan.FromSeconds(3));

        using var response = await waiting.WaitAsync(TimeSpan.FromSeconds(30));
        response.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.CountFor("a").Should().Be(1);
    }

    [Fact]
    public async Task A_caller_cancelling_while_it_waits_for_a_refused_refill_gets_its_cancellation_and_nothing_is_asked_again()
    {
        using var cancellation = new CancellationTokenSource();
        var store = new ReservingStore().Refuse("a", TimeSpan.FromSeconds(3));
        using var h = Harness(store);

        var waiting = h.Client.PostAsync("/", Chat(100), cancellation.Token);
        await WhenWaiting(h);
        await cancellation.CancelAsync();
        store.Grant("a");
        h.AdvanceOffContext(TimeSpan.FromSeconds(3));

        await FluentActions.Awaiting(() => waiting).Should().ThrowAsync<OperationCanceledException>();
        store.Reserved.Should().ContainSingle("the cancelled caller reserves nothing after its wait");
        h.Transport.Requests.Should().BeEmpty();
        ((LateTimerTimeProvider)h.Time).Queue.Count.Should().Be(0);
    }

    [Fact]
    public async Task A_background_caller_refused_everywhere_waits_and_reserves_again_keeping_its_headroom()
    {
        var store = new ReservingStore().Refuse("a", TimeSpan.FromSeconds(3));
        using var h = Harness(store, o => o.BackgroundHeadroom = 0.3);
        h.Transport.Respond("a", HttpStatusCode.OK);

        using var request = new HttpRequestMessage(HttpMethod.Post, "/") { Content = Chat(100) };
        request.Options.Set(PriorityRoutingRequestOptions.Hints, new PriorityRoutingHints { Background = true });
        var waiting = h.Client.SendAsync(request);
        waiting.IsCompleted.Should().BeFalse();
        store.Grant("a");
        h.AdvanceOffContext(TimeSpan.FromSeconds(3));

        using var response = await waiting.WaitAsync(TimeSpan.FromSeconds(30));
        response.StatusCode.Should().Be(HttpStatusCode.OK);
        store.Headrooms.Should().Equal([0.3, 0.3], "both reservations are the background request's");
    }

    [Fact]
    public async Task With_no_failover_a_caller_refused_everywhere_waits_and_is_then_bound_to_the_one_backend_it_is_sent_to()
    {
        var store = new ReservingStore().Refuse("a", TimeSpan.FromSeconds(3)).Refuse("b", TimeSpan.FromSeconds(5));
        using var h = Harness(store, RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2));
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("retry-after-ms", "20000")).Respond("b", HttpStatusCode.OK);

        using var request = new HttpRequestMessage(HttpMethod.Post, "/") { Content = Chat(100) };
        request.Options.Set(PriorityRoutingRequestOptions.Hints, new PriorityRoutingHints { NoFailover = true });
        var waiting = h.Client.SendAsync(request);
        store.Grant("a").Grant("b");
        h.AdvanceOffContext(TimeSpan.FromSeconds(3));

        using var response = await waiting.WaitAsync(TimeSpan.FromSeconds(30));
        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests, "a's own 429: the request is sent once, never to b");
        response.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(20));
        h.Transport.Hosts.Should().Equal("a");
    }

    [Fact]
    public async Task A_pinned_caller_refused_by_the_shared_budget_of_its_backend_waits_for_that_refill_and_never_goes_elsewhere()
    {
        var store = new ReservingStore().Refuse("a", TimeSpan.FromSeconds(3));
        using var h = Harness(store, o => o.Affinity.Store = new InMemoryAffinityStore(), RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 1));
        ((InMemoryAffinityStore)h.Options.Affinity.Store!).Pin("resp_1", "a@http://a", TimeSpan.FromDays(1));
        h.Transport.Respond("a", HttpStatusCode.OK).Respond("b", HttpStatusCode.OK);

        var waiting = h.Client.PostAsync("/v1/responses", new StringContent("{\"model\":\"gpt-4o\",\"previous_response_id\":\"resp_1\",\"input\":\"hi\"}", Encoding.UTF8, "application/json"));
        waiting.IsCompleted.Should().BeFalse("only a holds the id: the caller waits for a's refill, b never serves it");
        store.Grant("a");
        h.AdvanceOffContext(TimeSpan.FromSeconds(3));

        using var response = await waiting.WaitAsync(TimeSpan.FromSeconds(30));
        response.StatusCode.Should().Be(HttpStatusCode.OK);
        store.Reserved.Select(r => r.Status).Should().Equal(BackendReservationStatus.Refused, BackendReservationStatus.Granted);
        h.Transport.Hosts.Should().Equal("a");
    }

    [Fact]
    public async Task Callers_refused_everywhere_by_a_shared_budget_that_this_process_saw_with_room_all_wait_for_the_refill()
    {
        // This process's view knows the budget (an answer of its own reported room); its peers spent it since: the shared
        // budget refuses, the view would admit. Each caller waits for the refusal's refill, as if the view knew nothing.
        var store = new ReservingStore();
        using var h = Harness(store);
        await LearnRoomAsync(h);
        store.Refuse("a", TimeSpan.FromSeconds(3));

        var waiting = Enumerable.Range(0, 3).Select(_ => h.Client.PostAsync("/", Chat(100))).ToArray();
        await ((LateTimerTimeProvider)h.Time).WhenWaitingAsync(3);
        store.Grant("a");
        h.AdvanceOffContext(TimeSpan.FromSeconds(3));

        var responses = await Task.WhenAll(waiting).WaitAsync(TimeSpan.FromSeconds(30));
        responses.Select(r => r.StatusCode).Should().Equal(HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK);
        h.Transport.CountFor("a").Should().Be(4);
        store.Reserved.Count(r => r.Status == BackendReservationStatus.Refused).Should().Be(3);
        foreach (var response in responses)
        {
            response.Dispose();
        }
    }

    [Fact]
    public async Task Callers_refused_by_the_shared_budget_with_refills_a_few_milliseconds_apart_all_wait_for_it_and_are_served()
    {
        // Each refusal's refill is measured per call, so one refill reaches the callers as moments a few milliseconds apart
        // (3.000, 3.010, 2.995 s). The shared budget decides at its refill, not this process's view (whose share of a
        // 10,000 refill holds one of these 6,000-token callers): every caller within MaxQueueWait waits and asks it again.
        var store = new ReservingStore();
        using var h = Harness(store);
        await LearnRoomAsync(h);
        var refills = new ConcurrentQueue<TimeSpan>([TimeSpan.FromMilliseconds(3000), TimeSpan.FromMilliseconds(3010), TimeSpan.FromMilliseconds(2995)]);
        store.Answer("a", (key, cost, _, _) => ValueTask.FromResult(BackendReservation.Refused(key, cost, refills.TryDequeue(out var refill) ? refill : TimeSpan.FromSeconds(3))));

        var waiting = Enumerable.Range(0, 3).Select(_ => h.Client.PostAsync("/", Chat(6000))).ToArray();
        var answeredAtOnce = waiting.Where(call => call.IsCompleted).ToArray();
        answeredAtOnce.Should().BeEmpty("each caller waits for the refill within MaxQueueWait");
        await ((LateTimerTimeProvider)h.Time).WhenWaitingAsync(3).WaitAsync(TimeSpan.FromSeconds(30));
        store.Grant("a");
        h.AdvanceOffContext(TimeSpan.FromMilliseconds(3010));

        var responses = await Task.WhenAll(waiting).WaitAsync(TimeSpan.FromSeconds(30));
        responses.Select(r => r.StatusCode).Should().Equal(HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK);
        h.Transport.CountFor("a").Should().Be(4);
        store.Reserved.Count(r => r.Status == BackendReservationStatus.Refused).Should().Be(3);
        foreach (var response in responses)
        {
            response.Dispose();
        }
    }

    [Fact]
    public async Task A_caller_waiting_for_the_refill_of_a_refused_backend_at_its_cap_gives_its_slot_back_and_another_caller_is_served_there_meanwhile()
    {
        // The refused reservation held a's only slot (the slot is taken before the reservation is asked): given back, so Y
        // is served while X waits; at the refill a is Y's, and X waits for the slot too, within what is left of the bound.
        var store = new ReservingStore().Refuse("a", TimeSpan.FromSeconds(3));
        using var h = Harness(store, Capped("a", 1));
        var time = (LateTimerTimeProvider)h.Time;

        var x = h.Client.PostAsync("/", Chat(100));
        await WhenWaiting(h);
        store.Grant("a");
        var y = await HoldAsync(h).WaitAsync(TimeSpan.FromSeconds(30));
        y.StatusCode.Should().Be(HttpStatusCode.OK, "the refused caller gave a's only slot back");
        h.Transport.Hosts.Should().Equal("a");

        h.AdvanceOffContext(TimeSpan.FromSeconds(3));
        time.WaitForTimers(2).Should().BeTrue("after the refill X finds a at its cap and waits for the slot");
        x.IsCompleted.Should().BeFalse("Y holds a's only slot");
        y.Dispose();

        using var response = await x.WaitAsync(TimeSpan.FromSeconds(30));
        response.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("a", "a");
        store.Reserved.Select(r => r.Status).Should().Equal(BackendReservationStatus.Refused, BackendReservationStatus.Granted, BackendReservationStatus.Granted);
        time.Queue.Count.Should().Be(0);
    }

    [Fact]
    public async Task A_caller_that_waited_for_a_slot_and_is_then_refused_by_the_shared_budget_waits_for_the_refill_and_is_served()
    {
        var store = new ReservingStore();
        using var h = Harness(store, Capped("a", 1));
        var time = (LateTimerTimeProvider)h.Time;
        var y = await HoldAsync(h);
        store.Refuse("a", TimeSpan.FromSeconds(3));

        var x = h.Client.PostAsync("/", Chat(100));
        time.WaitForTimers(2).Should().BeTrue("X waits for a's only slot");
        y.Dispose();
        await WhenWaiting(h);
        x.IsCompleted.Should().BeFalse("the shared budget refused X: it waits for the refill");
        store.Grant("a");
        h.AdvanceOffContext(TimeSpan.FromSeconds(3));

        using var response = await x.WaitAsync(TimeSpan.FromSeconds(30));
        response.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("a", "a");
        store.Reserved.Select(r => r.Status).Should().Equal(BackendReservationStatus.Granted, BackendReservationStatus.Refused, BackendReservationStatus.Granted);
    }

    [Fact]
    public async Task The_wait_for_a_slot_and_the_wait_for_a_refused_refill_share_one_max_queue_wait()
    {
        // 8 s waiting for the slot leave 2 s of the 10 s bound: a refill 3 s away is answered at once, with its own Retry-After.
        var store = new ReservingStore();
        using var h = Harness(store, Capped("a", 1));
        var time = (LateTimerTimeProvider)h.Time;
        var y = await HoldAsync(h);
        store.Refuse("a", TimeSpan.FromSeconds(3));

        var x = h.Client.PostAsync("/", Chat(100));
        time.WaitForTimers(2).Should().BeTrue("X waits for a's only slot");
        h.AdvanceOffContext(TimeSpan.FromSeconds(8));
        x.IsCompleted.Should().BeFalse();
        y.Dispose();

        using var response = await x.WaitAsync(TimeSpan.FromSeconds(30));
        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(3));
        h.Transport.Hosts.Should().Equal("a");
        store.Reserved.Select(r => r.Status).Should().Equal(BackendReservationStatus.Granted, BackendReservationStatus.Refused);
        time.Queue.Count.Should().Be(0);
    }

    [Fact]
    public async Task Callers_refused_by_the_shared_budget_of_a_backend_with_a_declared_quota_all_wait_for_the_refill_and_are_served()
    {
        // A declared TokensPerMinute makes this process's view know a's budget from the start — room for one of these
        // 6,000-token callers in its 10,000 — while its peers spent the shared one: the shared budget decides at its
        // refill, so both callers wait for the refusal's refill rather than one being told to come back in a minute.
        var declared = RoutingHarness.Backend("a", 1);
        declared.TokensPerMinute = 10_000;
        var store = new ReservingStore().Refuse("a", TimeSpan.FromSeconds(3));
        using var h = Harness(store, declared);
        h.Transport.Respond("a", HttpStatusCode.OK);

        var waiting = Enumerable.Range(0, 2).Select(_ => h.Client.PostAsync("/", Chat(6000))).ToArray();
        await ((LateTimerTimeProvider)h.Time).WhenWaitingAsync(2).WaitAsync(TimeSpan.FromSeconds(30));
        waiting.Where(call => call.IsCompleted).Should().BeEmpty("each caller waits for the refusal's refill instead of a 429");
        store.Grant("a");
        h.AdvanceOffContext(TimeSpan.FromSeconds(3));

        var responses = await Task.WhenAll(waiting).WaitAsync(TimeSpan.FromSeconds(30));
        responses.Select(r => r.StatusCode).Should().Equal(HttpStatusCode.OK, HttpStatusCode.OK);
        store.Reserved.Select(r => r.Status).Should().Equal(
            BackendReservationStatus.Refused, BackendReservationStatus.Refused, BackendReservationStatus.Granted, BackendReservationStatus.Granted);
        h.Transport.CountFor("a").Should().Be(2);
        foreach (var response in responses)
        {
            response.Dispose();
        }
    }

    [Fact]
    public async Task A_caller_refused_by_the_shared_budgets_of_its_model_and_of_its_fallback_waits_for_the_soonest_refill_and_is_served_its_own_model()
    {
        var a = RoutingHarness.Backend("a", 1);
        a.Models["gpt-4o"] = "gpt-4o-ptu";
        var b = RoutingHarness.Backend("b", 1);
        b.Models["mini"] = "mini-deploy";
        var store = new ReservingStore().Refuse("a", TimeSpan.FromSeconds(3)).Refuse("b", TimeSpan.FromSeconds(5));
        using var h = Harness(store, o => o.ModelFallbacks["gpt-4o"] = ["mini"], a, b);
        h.Transport.Respond("a", HttpStatusCode.OK).Respond("b", HttpStatusCode.OK);

        var waiting = h.Client.PostAsync("/v1/chat/completions", Chat(100, "gpt-4o"));
        await WhenWaiting(h).WaitAsync(TimeSpan.FromSeconds(30));
        waiting.IsCompleted.Should().BeFalse("both models' shared budgets refused: the caller waits for a's refill, the soonest");
        store.Grant("a");
        h.AdvanceOffContext(TimeSpan.FromSeconds(3));

        using var response = await waiting.WaitAsync(TimeSpan.FromSeconds(30));
        response.StatusCode.Should().Be(HttpStatusCode.OK);
        response.Headers.GetValues("x-priority-routing-model").Should().Equal("gpt-4o");
        store.Reserved.Select(r => (r.Key.Backend, r.Status)).Should().Equal(
            ("a@http://a", BackendReservationStatus.Refused), ("b@http://b", BackendReservationStatus.Refused), ("a@http://a", BackendReservationStatus.Granted));
        h.Transport.Hosts.Should().Equal("a");
    }

    [Fact]
    public async Task A_caller_refused_by_the_shared_budgets_of_its_model_and_of_its_fallback_beyond_max_queue_wait_is_told_the_soonest_refill()
    {
        var a = RoutingHarness.Backend("a", 1);
        a.Models["gpt-4o"] = "gpt-4o-ptu";
        var b = RoutingHarness.Backend("b", 1);
        b.Models["mini"] = "mini-deploy";
        var store = new ReservingStore().Refuse("a", TimeSpan.FromSeconds(14)).Refuse("b", TimeSpan.FromSeconds(12));
        using var h = Harness(store, o => o.ModelFallbacks["gpt-4o"] = ["mini"], a, b);

        using var response = await h.Client.PostAsync("/v1/chat/completions", Chat(100, "gpt-4o")).WaitAsync(TimeSpan.FromSeconds(30));

        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(12), "the fallback's refill is the soonest");
        store.Reserved.Should().HaveCount(2);
        h.Transport.Requests.Should().BeEmpty();
    }

    /// <summary>This process's view learns the budget of a from an answer of its own: 9,000 of 10,000 tokens left, reset in 60 s.</summary>
    private static async Task LearnRoomAsync(RoutingHarness h)
    {
        h.Transport.Respond("a", _ =>
        {
            var answer = new HttpResponseMessage(HttpStatusCode.OK);
            answer.Headers.TryAddWithoutValidation("x-ratelimit-remaining-tokens", "9000");
            answer.Headers.TryAddWithoutValidation("x-ratelimit-limit-tokens", "10000");
            answer.Headers.TryAddWithoutValidation("x-ratelimit-reset-tokens", "60s");
            return answer;
        });
        (await h.Client.PostAsync("/", Chat(100))).Dispose();
    }

    private static Task WhenWaiting(RoutingHarness h) => ((LateTimerTimeProvider)h.Time).WhenWaitingAsync(1);

    private static RoutingHarness Harness(ReservingStore store, params PriorityBackend[] backends) => Harness(store, null, backends);

    private static RoutingHarness Harness(ReservingStore store, Action<PriorityRoutingStrategyOptions>? configure, params PriorityBackend[] backends)
        => new(
            o =>
            {
                o.StateStore = store;
                o.Randomizer = _ => 0;
                o.MaxQueueWait = MaxQueueWait;
                configure?.Invoke(o);
            },
            null,
            new LateTimerTimeProvider(RoutingHarness.Start),
            backends.Length > 0 ? backends : [RoutingHarness.Backend("a", 1)]);

    private static PriorityBackend Capped(string name, int cap)
    {
        var backend = RoutingHarness.Backend(name, 1);
        backend.MaxConcurrentRequests = cap;
        return backend;
    }

    /// <summary>A request whose response holds its backend's slot until it is disposed.</summary>
    private static Task<HttpResponseMessage> HoldAsync(RoutingHarness h)
        => h.Client.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/") { Content = Chat(100) }, HttpCompletionOption.ResponseHeadersRead);

    private static StringContent Chat(int maxTokens, string? model = null)
        => new("{" + (model is null ? string.Empty : "\"model\":\"" + model + "\",") + "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":" + maxTokens.ToString(CultureInfo.InvariantCulture) + "}", Encoding.UTF8, "application/json");
}
