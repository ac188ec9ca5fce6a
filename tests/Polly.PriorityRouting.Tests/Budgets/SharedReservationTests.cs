using System.Globalization;
using System.Net;
using System.Text;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Budgets;

/// <summary>
/// Admission through a store's shared reservations (<see cref="IBackendReservationStore"/>), through the strategy on a
/// fake clock: what a refusal, a grant and no verdict do to one request, and what the answers give back to the store.
/// </summary>
public class SharedReservationTests
{
    private static readonly TimeSpan Refill = TimeSpan.FromSeconds(7);

    [Fact]
    public async Task A_refused_backend_is_skipped_for_that_request_only_and_is_neither_marked_nor_charged()
    {
        var store = new ReservingStore().Refuse("a", Refill);
        using var h = Harness(store);
        h.Transport.Respond("a", HttpStatusCode.OK).Respond("b", HttpStatusCode.OK);

        using var refused = await h.Client.PostAsync("/", Chat(100));
        store.Grant("a");
        using var next = await h.Client.PostAsync("/", Chat(100));

        refused.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal(["b", "a"], "the refusal closed a to the first request only");
        store.Marks.TryGetUnavailability(RoutingHarness.Key("a"), out _).Should().BeFalse("a refusal is no throttle of the backend");
        store.Reserved.Select(r => (r.Key.Backend, r.Status)).Should().Equal(
            ("a@http://a", BackendReservationStatus.Refused), ("b@http://b", BackendReservationStatus.Granted), ("a@http://a", BackendReservationStatus.Granted));
    }

    [Fact]
    public async Task When_every_backend_is_refused_the_exhausted_answer_says_the_soonest_refill_and_nothing_is_sent()
    {
        var store = new ReservingStore().Refuse("a", TimeSpan.FromSeconds(9)).Refuse("b", TimeSpan.FromSeconds(2.5)).Refuse("c", TimeSpan.FromSeconds(30));
        using var h = Harness(store);

        using var response = await h.Client.PostAsync("/", Chat(100));

        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(3), "2.5 s, rounded up to the whole second");
        response.Headers.GetValues("retry-after-ms").Single().Should().Be((2500 + ExhaustedResponse.TimerSlackMilliseconds).ToString(CultureInfo.InvariantCulture));
        h.Transport.Requests.Should().BeEmpty();
    }

    [Fact]
    public async Task A_refusal_whose_refill_came_meanwhile_still_answers_a_non_zero_retry_after()
    {
        var store = new ReservingStore().Refuse("a", TimeSpan.Zero);
        using var h = Harness(store, RoutingHarness.Backend("a", 1));

        using var response = await h.Client.PostAsync("/", Chat(100));

        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(1));
    }

    [Fact]
    public async Task Without_a_verdict_from_the_store_this_process_budget_view_decides()
    {
        var store = new ReservingStore().Unknown("a").Unknown("b");
        using var h = Harness(store);
        h.Transport.Respond("a", _ => Budget(remaining: 0, limit: 100_000, reset: "60s")).Respond("b", HttpStatusCode.OK);

        using var first = await h.Client.PostAsync("/", Chat(100));
        using var second = await h.Client.PostAsync("/", Chat(100));

        h.Transport.Hosts.Should().Equal(["a", "b"], "a's own answer said its budget is spent");
        store.Released.Should().BeEmpty("an unknown answer that counted nothing has nothing to give back");
    }

    [Fact]
    public async Task A_failing_store_fails_open_and_the_request_is_sent()
    {
        var store = new ReservingStore().Fail("a");
        using var h = Harness(store);
        h.Transport.Respond("a", HttpStatusCode.OK);

        using var response = await h.Client.PostAsync("/", Chat(100));

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("a");
    }

    [Fact]
    public async Task An_answer_corrects_its_reservation_with_its_counts_measured_from_the_send()
    {
        var store = new ReservingStore();
        using var h = Harness(store);
        h.Transport.Respond("a", _ =>
        {
            // A completion that takes 4 s: the budget it reports is the one of when the backend admitted it.
            h.Time.Advance(TimeSpan.FromSeconds(4));
            return Budget(remaining: 40_000, limit: 100_000, reset: "50s", requests: ("900", "1000", "1s"));
        });

        using var response = await h.Client.PostAsync("/", Chat(100));

        var (reservation, report) = store.Corrected.Should().ContainSingle().Subject;
        reservation.Should().Be(store.Reserved.Single());
        reservation.ReservedAt.Should().Be(RoutingHarness.Start);
        report.Should().Be(new BackendReservationReport(
            40_000, 100_000, TimeSpan.FromSeconds(50), 900, 1000, TimeSpan.FromSeconds(1), RoutingHarness.Start, RoutingHarness.Start.AddSeconds(4)));
        store.Released.Should().BeEmpty();
    }

    [Fact]
    public async Task A_throttled_attempt_gives_its_reservation_back_and_the_next_backend_reserves_its_own()
    {
        var store = new ReservingStore();
        using var h = Harness(store);
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("retry-after-ms", "5000")).Respond("b", HttpStatusCode.OK);

        using var response = await h.Client.PostAsync("/", Chat(100));

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        store.Released.Select(r => r.Key.Backend).Should().Equal("a@http://a");
        store.Reserved.Select(r => r.Key.Backend).Should().Equal("a@http://a", "b@http://b");
        store.Corrected.Should().BeEmpty("b's answer reported no budget");
    }

    [Fact]
    public async Task A_refused_connection_gives_the_reservation_back_and_a_server_error_keeps_it()
    {
        var store = new ReservingStore();
        using var h = Harness(store);
        h.Transport.Throw("a", new HttpRequestException(HttpRequestError.ConnectionError, "refused"))
            .Respond("b", HttpStatusCode.InternalServerError)
            .Respond("c", HttpStatusCode.OK);

        using var response = await h.Client.PostAsync("/", Chat(100));

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        store.Released.Select(r => r.Key.Backend).Should().Equal(["a@http://a"], "the backend may have counted a request it failed");
    }

    [Fact]
    public async Task With_no_failover_a_refused_first_backend_is_not_the_one_the_request_is_bound_to()
    {
        var store = new ReservingStore().Refuse("a", Refill);
        using var h = Harness(store);
        h.Transport.Respond("b", HttpStatusCode.TooManyRequests, ("retry-after-ms", "4000")).Respond("c", HttpStatusCode.OK);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/") { Content = Chat(100) };
        request.Options.Set(PriorityRoutingRequestOptions.Hints, new PriorityRoutingHints { NoFailover = true });

        using var response = await h.Client.SendAsync(request);

        h.Transport.Hosts.Should().Equal(["b"], "b was the first backend sent to: the only one, and never c");
        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(4), "the answer is b's own");
    }

    [Fact]
    public async Task A_caller_cancelling_during_the_reservation_gets_its_cancellation_and_the_reservation_back()
    {
        using var cancellation = new CancellationTokenSource();
        var store = new ReservingStore().Answer("a", (key, cost, now, _) =>
        {
            // The store granted it, and the caller gave up while the answer travelled back.
            cancellation.Cancel();
            return new(BackendReservation.Granted(key, cost, now, 41, 1));
        });
        using var h = Harness(store);

        var sending = () => h.Client.PostAsync("/", Chat(100), cancellation.Token);

        await sending.Should().ThrowAsync<OperationCanceledException>();
        h.Transport.Requests.Should().BeEmpty();
        store.Released.Select(r => r.Sequence).Should().Equal(41);
        store.Marks.TryGetUnavailability(RoutingHarness.Key("a"), out _).Should().BeFalse();
    }

    [Fact]
    public async Task A_caller_cancelling_while_its_reservation_travels_gets_its_cancellation_not_an_exhausted_answer()
    {
        // The store had no verdict by the time the caller gave up (as Redis answers a cancelled wait), and this process's
        // view believes the only backend spent: nothing is admitted, and the caller must get its own cancellation.
        using var cancellation = new CancellationTokenSource();
        var store = new ReservingStore();
        using var h = Harness(store, RoutingHarness.Backend("a", 1));
        h.Transport.Respond("a", _ => Budget(remaining: 0, limit: 100_000, reset: "60s"));
        (await h.Client.PostAsync("/", Chat(100))).Dispose();
        store.Answer("a", (key, cost, now, _) =>
        {
            cancellation.Cancel();
            return new(BackendReservation.Unknown(key, cost, now, 0, 0));
        });

        var sending = () => h.Client.PostAsync("/", Chat(100), cancellation.Token);

        await sending.Should().ThrowAsync<OperationCanceledException>();
        h.Transport.CountFor("a").Should().Be(1, "only the first request was sent");
    }

    [Fact]
    public async Task A_caller_cancelling_while_its_reservation_travels_spends_nothing_of_this_process_view()
    {
        // Room for one 100-token chat in this process's view of a: a caller that gave up while its reservation travelled
        // must not take it from the next caller.
        using var cancellation = new CancellationTokenSource();
        var store = new ReservingStore();
        using var h = Harness(store, RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2));
        h.Transport.Respond("a", _ => Budget(remaining: 150, limit: 100_000, reset: "60s")).Respond("b", HttpStatusCode.OK);
        (await h.Client.PostAsync("/", Chat(10))).Dispose();
        h.Transport.Respond("a", HttpStatusCode.OK);
        store.Answer("a", (key, cost, now, _) =>
        {
            cancellation.Cancel();
            return new(BackendReservation.Unknown(key, cost, now, 0, 0));
        });

        var cancelled = () => h.Client.PostAsync("/", Chat(100), cancellation.Token);
        await cancelled.Should().ThrowAsync<OperationCanceledException>();
        store.Unknown("a");
        using var next = await h.Client.PostAsync("/", Chat(100));

        h.Transport.Hosts.Should().Equal(["a", "a"], "the cancelled caller took nothing of a's room in this process's view");
    }

    [Fact]
    public async Task A_refusal_longer_than_max_cooldown_answers_max_cooldown()
    {
        // A store's refill is a peer's word: bounded like every other deadline, and never a reason to fail the request.
        var store = new ReservingStore().Refuse("a", TimeSpan.MaxValue).Refuse("b", TimeSpan.FromHours(2));
        using var h = Harness(store, o => o.MaxCooldown = TimeSpan.FromSeconds(90), RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2));

        using var response = await h.Client.PostAsync("/", Chat(100));

        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(90));
        h.Transport.Requests.Should().BeEmpty();
    }

    [Fact]
    public async Task A_model_fallback_reserves_on_the_fallback_deployment_and_the_exhausted_answer_keeps_every_refusal()
    {
        var a = RoutingHarness.Backend("a", 1);
        a.Models["gpt-4o"] = "gpt-4o-ptu";
        var b = RoutingHarness.Backend("b", 1);
        b.Models["gpt-4o-mini"] = "mini";
        var store = new ReservingStore().Refuse("a", TimeSpan.FromSeconds(9));
        using var h = Harness(store, o => o.ModelFallbacks["gpt-4o"] = ["gpt-4o-mini"], a, b);
        h.Transport.Respond("b", HttpStatusCode.OK);

        using var servedByFallback = await h.Client.PostAsync("/v1/chat/completions", Model("gpt-4o"));
        store.Refuse("b", TimeSpan.FromSeconds(4));
        using var exhausted = await h.Client.PostAsync("/v1/chat/completions", Model("gpt-4o"));

        servedByFallback.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("b");
        store.Reserved.Select(r => (r.Key, r.Status)).Should().Equal(
            (RoutingHarness.Key("a", "gpt-4o-ptu"), BackendReservationStatus.Refused),
            (RoutingHarness.Key("b", "mini"), BackendReservationStatus.Granted),
            (RoutingHarness.Key("a", "gpt-4o-ptu"), BackendReservationStatus.Refused),
            (RoutingHarness.Key("b", "mini"), BackendReservationStatus.Refused));
        exhausted.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        exhausted.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(4), "the fallback's refill comes before the first model's");
    }

    [Fact]
    public void A_synchronous_caller_waits_for_a_reservation_that_completes_later()
    {
        var store = new ReservingStore().Answer("a", async (key, cost, now, cancellationToken) =>
        {
            await Task.Delay(10, cancellationToken);
            return BackendReservation.Granted(key, cost, now, 7, 1);
        });
        using var h = Harness(store);
        h.Transport.Respond("a", HttpStatusCode.OK);

        using var response = h.Client.Send(new HttpRequestMessage(HttpMethod.Post, "/") { Content = Chat(100) });

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("a");
    }

    [Fact]
    public async Task With_budgets_off_the_store_is_never_asked()
    {
        var store = new ReservingStore().Refuse("a", Refill);
        using var h = Harness(store, o => o.TokenBudgets = false);
        h.Transport.Respond("a", HttpStatusCode.OK);

        using var response = await h.Client.PostAsync("/", Chat(100));

        h.Transport.Hosts.Should().Equal("a");
        store.Reserved.Should().BeEmpty();
    }

    [Fact]
    public async Task A_pinned_request_whose_backend_is_refused_waits_for_that_backend_and_never_goes_elsewhere()
    {
        var pins = new InMemoryAffinityStore(1_000, TimeProvider.System);
        pins.Pin("resp_pinned", "a@http://a", TimeSpan.FromDays(1));
        var store = new ReservingStore().Refuse("a", TimeSpan.FromSeconds(5));
        using var h = Harness(store, o => o.Affinity.Store = pins);

        using var response = await h.Client.PostAsync("/v1/responses", Json("{\"model\":\"gpt-4o\",\"input\":\"and then?\",\"previous_response_id\":\"resp_pinned\"}"));

        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(5), "the pinned backend's refill, not another backend");
        h.Transport.Requests.Should().BeEmpty();
        store.Reserved.Select(r => r.Key.Backend).Should().Equal("a@http://a");
    }

    [Fact]
    public async Task A_mapped_model_reserves_on_each_backends_own_deployment()
    {
        var a = RoutingHarness.Backend("a", 1);
        a.Models["gpt-4o"] = "gpt-4o-ptu";
        var b = RoutingHarness.Backend("b", 2);
        b.Models["gpt-4o"] = "gpt-4o";
        var store = new ReservingStore().Refuse("a", Refill);
        using var h = Harness(store, a, b);
        h.Transport.Respond("b", HttpStatusCode.OK);

        using var response = await h.Client.PostAsync("/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", Chat(100));

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        store.Reserved.Select(r => r.Key).Should().Equal(RoutingHarness.Key("a", "gpt-4o-ptu"), RoutingHarness.Key("b", "gpt-4o"));
        h.StateOf("a", "gpt-4o-ptu").Should().BeNull();
    }

    [Fact]
    public async Task A_queued_caller_refused_everywhere_waits_for_the_refill_and_reserves_again_in_its_new_round()
    {
        var store = new ReservingStore();
        using var h = Harness(store, o => o.MaxQueueWait = TimeSpan.FromSeconds(10), RoutingHarness.Backend("a", 1));
        h.Transport.Respond("a", _ => Budget(remaining: 90_000, limit: 100_000, reset: "60s"));
        (await h.Client.PostAsync("/", Chat(100))).Dispose();
        store.Refuse("a", TimeSpan.FromSeconds(3));

        var waiting = h.Client.PostAsync("/", Chat(100));
        waiting.IsCompleted.Should().BeFalse("the caller waits for the refused budget's refill instead of a 429");
        store.Grant("a");
        h.AdvanceOffContext(TimeSpan.FromSeconds(3));

        using var response = await waiting.WaitAsync(TimeSpan.FromSeconds(30));
        response.StatusCode.Should().Be(HttpStatusCode.OK);
        store.Reserved.Select(r => r.Status).Should().Equal(BackendReservationStatus.Granted, BackendReservationStatus.Refused, BackendReservationStatus.Granted);
        h.Transport.CountFor("a").Should().Be(2);
    }

    [Fact]
    public async Task Without_a_verdict_a_declared_quota_decides()
    {
        var declared = RoutingHarness.Backend("a", 1);
        declared.TokensPerMinute = 1_000;
        var store = new ReservingStore().Unknown("a").Unknown("b");
        using var h = Harness(store, declared, RoutingHarness.Backend("b", 2));
        h.Transport.Respond("a", HttpStatusCode.OK).Respond("b", HttpStatusCode.OK);

        (await h.Client.PostAsync("/", Chat(600))).Dispose();
        (await h.Client.PostAsync("/", Chat(600))).Dispose();

        h.Transport.Hosts.Should().Equal(["a", "b"], "the second 600-token request does not fit a's declared 1,000 tokens a minute");
    }

    [Fact]
    public async Task A_granted_reservation_is_counted_in_this_process_view_too()
    {
        var store = new ReservingStore();
        using var h = Harness(store, RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2));
        h.Transport.Respond("a", _ => Budget(remaining: 1_000, limit: 100_000, reset: "60s")).Respond("b", HttpStatusCode.OK);
        (await h.Client.PostAsync("/", Chat(100))).Dispose();
        h.Transport.Respond("a", HttpStatusCode.OK);

        // Granted by the store, the request is spent locally as well (its answer reports nothing): should the store then
        // know nothing (an outage), the view still counts it.
        (await h.Client.PostAsync("/", Chat(100))).Dispose();
        store.Unknown("a");
        (await h.Client.PostAsync("/", Chat(900))).Dispose();

        h.Transport.Hosts.Should().Equal("a", "a", "b");
    }

    [Fact]
    public async Task An_answer_read_as_a_stream_keeps_its_reservation_while_its_body_is_read()
    {
        var store = new ReservingStore();
        using var h = Harness(store);
        h.Transport.Respond("a", HttpStatusCode.OK);

        using var request = new HttpRequestMessage(HttpMethod.Post, "/") { Content = Chat(100) };
        using var response = await h.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var body = await response.Content.ReadAsStringAsync();

        body.Should().Be("a");
        store.Reserved.Should().ContainSingle().Which.Status.Should().Be(BackendReservationStatus.Granted);
        store.Released.Should().BeEmpty("the backend counted a request it answered");
        store.Corrected.Should().BeEmpty("the answer reported no budget");
    }

    [Fact]
    public async Task A_stream_broken_mid_body_keeps_its_reservation_as_its_answer_corrected_it()
    {
        // The backend admitted and counted the request; the body breaking later gives nothing back.
        var body = new ScriptedBodyStream().Send("data: {}\n\n").Fail(new IOException("connection reset"));
        var store = new ReservingStore();
        using var h = Harness(store, o => o.FirstByteTimeout = TimeSpan.FromSeconds(1));
        h.Transport.Respond("a", _ =>
        {
            var response = Budget(remaining: 50_000, limit: 100_000, reset: "60s");
            response.Content = new StreamContent(body);
            return response;
        });

        using var request = new HttpRequestMessage(HttpMethod.Post, "/") { Content = Chat(100) };
        using var response = await h.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var reading = () => response.Content.ReadAsStringAsync();

        await reading.Should().ThrowAsync<HttpRequestException>().WithInnerException(typeof(IOException));
        store.Corrected.Should().ContainSingle().Which.Report.RemainingTokens.Should().Be(50_000);
        store.Released.Should().BeEmpty();
    }

    [Fact]
    public async Task An_answer_without_a_first_byte_in_time_keeps_its_reservation_and_the_next_backend_reserves_its_own()
    {
        // Headers came: the backend counted the request, though its body never started.
        var stalled = new ScriptedBodyStream();
        var store = new ReservingStore();
        using var h = Harness(store, o => o.FirstByteTimeout = TimeSpan.FromSeconds(1));
        h.Transport.Respond("a", _ => new HttpResponseMessage(HttpStatusCode.OK) { Content = new StreamContent(stalled) }).Respond("b", HttpStatusCode.OK);

        using var request = new HttpRequestMessage(HttpMethod.Post, "/") { Content = Chat(100) };
        var sending = h.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        await stalled.WhenReading();
        h.Time.Advance(TimeSpan.FromSeconds(1));
        using var response = await sending;

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("a", "b");
        store.Reserved.Select(r => r.Key.Backend).Should().Equal("a@http://a", "b@http://b");
        store.Released.Should().BeEmpty("a timeout keeps the reservation: the backend may have counted the request");
    }

    [Fact]
    public async Task The_exhausted_answer_takes_the_soonest_of_refills_and_throttles_alike()
    {
        var store = new ReservingStore().Refuse("a", TimeSpan.FromSeconds(9)).Refuse("c", TimeSpan.FromSeconds(30));
        using var h = Harness(store);
        h.Transport.Respond("b", HttpStatusCode.TooManyRequests, ("retry-after-ms", "4000"));

        using var throttledSoonest = await h.Client.PostAsync("/", Chat(100));
        store.Refuse("a", TimeSpan.FromSeconds(2));
        using var refusedSoonest = await h.Client.PostAsync("/", Chat(100));

        throttledSoonest.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        throttledSoonest.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(4), "b's own throttle ends before a's refill");
        refusedSoonest.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(2), "a refills before b's throttle ends");
        h.Transport.Hosts.Should().Equal(["b"], "b was marked by its 429 and skipped by the second request");
    }

    [Fact]
    public async Task Callers_refused_by_a_budget_this_process_knows_are_spread_over_its_refills()
    {
        var store = new ReservingStore();
        using var h = Harness(store, RoutingHarness.Backend("a", 1));
        h.Transport.Respond("a", _ => Budget(remaining: 9_000, limit: 10_000, reset: "10s"));
        (await h.Client.PostAsync("/", Chat(100))).Dispose();
        store.Refuse("a", TimeSpan.FromSeconds(10));

        using var first = await h.Client.PostAsync("/", Chat(6_000));
        using var second = await h.Client.PostAsync("/", Chat(6_000));

        first.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(10));
        second.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(20), "the first caller was promised the room of the refill at 10 s");
        h.Transport.CountFor("a").Should().Be(1);
    }

    [Fact]
    public async Task A_backend_this_process_believes_spent_is_still_asked_and_the_shared_budget_decides()
    {
        // Its last answer said "0 left for 60 s", measured from when it arrived; the shared budget knows the refill came.
        var store = new ReservingStore();
        using var h = Harness(store);
        h.Transport.Respond("a", _ => Budget(remaining: 0, limit: 100_000, reset: "60s"));
        (await h.Client.PostAsync("/", Chat(100))).Dispose();

        using var response = await h.Client.PostAsync("/", Chat(100));

        h.Transport.Hosts.Should().Equal(["a", "a"], "the shared budget granted it");
        store.Reserved.Select(r => r.Status).Should().Equal(BackendReservationStatus.Granted, BackendReservationStatus.Granted);
    }

    [Fact]
    public async Task A_background_request_asks_the_shared_budget_to_keep_the_headroom_free_and_a_foreground_one_does_not()
    {
        var store = new ReservingStore();
        using var h = Harness(store, o => o.BackgroundHeadroom = 0.3);
        h.Transport.Respond("a", HttpStatusCode.OK);
        using var background = new HttpRequestMessage(HttpMethod.Post, "/") { Content = Chat(100) };
        background.Options.Set(PriorityRoutingRequestOptions.Hints, new PriorityRoutingHints { Background = true });

        (await h.Client.SendAsync(background)).Dispose();
        (await h.Client.PostAsync("/", Chat(100))).Dispose();

        store.Headrooms.Should().Equal(0.3, 0);
    }

    [Fact]
    public async Task Without_a_verdict_a_background_request_keeps_the_headroom_in_this_process_view()
    {
        // Redis slow or down: the replica's own view keeps the headroom, as without reservations.
        var store = new ReservingStore().Unknown("a").Unknown("b");
        using var h = Harness(store, o => o.BackgroundHeadroom = 0.3, RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2));
        h.Transport.Respond("a", _ => Budget(remaining: 25_000, limit: 100_000, reset: "60s")).Respond("b", HttpStatusCode.OK);
        (await h.Client.PostAsync("/", Chat(100))).Dispose();
        using var background = new HttpRequestMessage(HttpMethod.Post, "/") { Content = Chat(100) };
        background.Options.Set(PriorityRoutingRequestOptions.Hints, new PriorityRoutingHints { Background = true });

        (await h.Client.SendAsync(background)).Dispose();
        (await h.Client.PostAsync("/", Chat(100))).Dispose();

        h.Transport.Hosts.Should().Equal(["a", "b", "a"], "25 % left of a is inside the 30 % kept for foreground requests");
    }

    [Fact]
    public async Task A_background_request_asks_the_shared_budget_to_keep_free_the_room_promised_to_foreground_callers_at_the_refill()
    {
        var store = new ReservingStore();
        using var h = Harness(store, o => o.BackgroundHeadroom = 0.3, RoutingHarness.Backend("a", 1));
        h.Transport.Respond("a", _ => Budget(remaining: 9_000, limit: 10_000, reset: "10s"));
        (await h.Client.PostAsync("/", Chat(100))).Dispose();
        store.Refuse("a", TimeSpan.FromSeconds(10));
        using var foreground = await h.Client.PostAsync("/", Chat(6_000));
        foreground.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(10));
        var promised = store.Reserved.Last().Cost;

        h.Time.Advance(TimeSpan.FromSeconds(10));
        store.Grant("a");
        (await SendBackground()).Dispose();
        (await h.Client.PostAsync("/", Chat(6_000))).Dispose();
        (await SendBackground()).Dispose();
        h.Time.Advance(TimeSpan.FromSeconds(10));
        (await SendBackground()).Dispose();

        store.Headrooms.Skip(2).Should().Equal([0.3, 0, 0.3, 0.3]);
        store.Promised.Skip(2).Should().Equal(
            [promised / 10_000.0, 0, 0, 0],
            "the foreground caller's room is kept until it comes back; after that, and past the promise's window, the headroom alone");

        Task<HttpResponseMessage> SendBackground()
        {
            var background = new HttpRequestMessage(HttpMethod.Post, "/") { Content = Chat(100) };
            background.Options.Set(PriorityRoutingRequestOptions.Hints, new PriorityRoutingHints { Background = true });
            return h.Client.SendAsync(background);
        }
    }

    private static RoutingHarness Harness(ReservingStore store, params PriorityBackend[] backends) => Harness(store, null, backends);

    private static RoutingHarness Harness(ReservingStore store, Action<PriorityRoutingStrategyOptions>? configure, params PriorityBackend[] backends)
        => new(
            o =>
            {
                o.StateStore = store;
                o.Randomizer = _ => 0;
                configure?.Invoke(o);
            },
            backends.Length > 0 ? backends : [RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2), RoutingHarness.Backend("c", 3)]);

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private static StringContent Model(string model)
        => Json("{\"model\":\"" + model + "\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":100}");

    private static StringContent Chat(int maxTokens)
        => new("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":" + maxTokens.ToString(CultureInfo.InvariantCulture) + "}", Encoding.UTF8, "application/json");

    private static HttpResponseMessage Budget(long remaining, long limit, string reset, (string Remaining, string Limit, string Reset)? requests = null)
    {
        var response = new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent("{}") };
        response.Headers.TryAddWithoutValidation("x-ratelimit-remaining-tokens", remaining.ToString(CultureInfo.InvariantCulture));
        response.Headers.TryAddWithoutValidation("x-ratelimit-limit-tokens", limit.ToString(CultureInfo.InvariantCulture));
        response.Headers.TryAddWithoutValidation("x-ratelimit-reset-tokens", reset);
        if (requests is { } r)
        {
            response.Headers.TryAddWithoutValidation("x-ratelimit-remaining-requests", r.Remaining);
            response.Headers.TryAddWithoutValidation("x-ratelimit-limit-requests", r.Limit);
            response.Headers.TryAddWithoutValidation("x-ratelimit-reset-requests", r.Reset);
        }

        return response;
    }
}
