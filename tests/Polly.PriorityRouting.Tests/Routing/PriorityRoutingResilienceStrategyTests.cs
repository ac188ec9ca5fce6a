using System.Net;
using System.Text.Json;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Time.Testing;
using Polly.PriorityRouting.Tests.Support;
using Polly.Telemetry;
using Polly.Timeout;

namespace Polly.PriorityRouting.Tests.Routing;

public class PriorityRoutingResilienceStrategyTests
{
    private static RoutingHarness Harness(Action<PriorityRoutingStrategyOptions>? configure = null, params PriorityBackend[] backends)
        => new(o =>
        {
            o.Randomizer = _ => 0; // first candidate of the tier: deterministic order a, b, c
            configure?.Invoke(o);
        }, backends);

    [Fact]
    public async Task Sends_to_the_first_tier_when_it_is_available()
    {
        using var h = Harness();

        using var response = await h.Client.GetAsync("/v1/chat?x=1");

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        (await response.Content.ReadAsStringAsync()).Should().Be("a");
        h.Transport.Requests.Single().Uri.AbsoluteUri.Should().Be("http://a/v1/chat?x=1");
    }

    [Fact]
    public async Task A_429_fails_over_within_the_call_and_marks_the_backend_until_its_retry_after()
    {
        using var h = Harness();
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "5"));

        using var response = await h.Client.GetAsync("/v1/chat");

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        (await response.Content.ReadAsStringAsync()).Should().Be("b");
        h.Transport.Hosts.Should().Equal("a", "b");
        h.StateOf("a").Should().Be(new BackendUnavailability(h.Time.GetUtcNow().AddSeconds(5), BackendUnavailableReason.Throttled));
        h.StateOf("b").Should().BeNull();
    }

    [Fact]
    public async Task Same_tier_first_then_lower_tiers()
    {
        using var h = Harness();
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests).Respond("b", HttpStatusCode.ServiceUnavailable);

        using var response = await h.Client.GetAsync("/");

        (await response.Content.ReadAsStringAsync()).Should().Be("c");
        h.Transport.Hosts.Should().Equal("a", "b", "c");
        h.StateOf("a")!.Value.Reason.Should().Be(BackendUnavailableReason.Throttled);
        h.StateOf("b")!.Value.Reason.Should().Be(BackendUnavailableReason.ServerError);
        h.StateOf("b")!.Value.Until.Should().Be(h.Time.GetUtcNow() + TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Later_requests_skip_a_marked_backend_until_its_deadline_passes()
    {
        using var h = Harness();
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("retry-after-ms", "1500"));
        (await h.Client.GetAsync("/")).Dispose();
        h.Transport.Respond("a", HttpStatusCode.OK);

        (await h.Client.GetAsync("/")).Dispose();
        h.Time.Advance(TimeSpan.FromMilliseconds(1499));
        (await h.Client.GetAsync("/")).Dispose();
        h.Time.Advance(TimeSpan.FromMilliseconds(1));
        (await h.Client.GetAsync("/")).Dispose();

        h.Transport.Hosts.Should().Equal("a", "b", "b", "b", "a");
    }

    [Fact]
    public async Task State_is_shared_by_every_pipeline_that_uses_the_store()
    {
        using var first = Harness();
        first.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "30"));
        (await first.Client.GetAsync("/")).Dispose();

        // A rebuilt pipeline (options reload) or another client: same store, new strategy instance.
        var rebuilt = new ResiliencePipelineBuilder<HttpResponseMessage> { TimeProvider = first.Time }
            .AddPriorityRouting(first.Options)
            .Build();
        var transport = new RecordingHandler();
        using var client = new HttpClient(new ResilienceHandler(rebuilt) { InnerHandler = transport });

        (await client.GetAsync("http://placeholder/")).Dispose();

        transport.Hosts.Should().Equal("b");
    }

    [Fact]
    public async Task Default_store_is_the_process_wide_shared_store()
    {
        var name = "shared-" + Guid.NewGuid().ToString("N");
        var options = new PriorityRoutingStrategyOptions
        {
            Backends = [new PriorityBackend { Name = name, BaseAddress = new Uri("http://a/") }],
        };
        var transport = new RecordingHandler().Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "60"));
        var pipeline = new ResiliencePipelineBuilder<HttpResponseMessage>().AddPriorityRouting(options).Build();
        using var client = new HttpClient(new ResilienceHandler(pipeline) { InnerHandler = transport });

        (await client.GetAsync("http://placeholder/")).Dispose();

        InMemoryBackendStateStore.Shared.TryGetUnavailability(options.Backends[0].GetStateKey(), out var state).Should().BeTrue();
        state.Reason.Should().Be(BackendUnavailableReason.Throttled);
        InMemoryBackendStateStore.Shared.Reset(options.Backends[0].GetStateKey());
    }

    [Fact]
    public async Task Exhausted_answers_429_with_the_soonest_recovery()
    {
        var exhausted = new List<OnBackendsExhaustedArguments>();
        using var h = Harness(o => o.OnBackendsExhausted = args => { exhausted.Add(args); return default; });
        h.Transport
            .Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "7"))
            .Respond("b", HttpStatusCode.TooManyRequests, ("retry-after-ms", "2500"))
            .Respond("c", HttpStatusCode.InternalServerError);

        using var response = await h.Client.GetAsync("/");

        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.GetValues("Retry-After").Should().Equal("3");
        response.Headers.GetValues("retry-after-ms").Should().Equal("2502");
        response.Headers.GetValues("x-priority-routing-exhausted").Should().Equal("true");
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        body.RootElement.GetProperty("error").GetProperty("code").GetString().Should().Be("all_backends_throttled");
        body.RootElement.GetProperty("error").GetProperty("message").GetString().Should().Be("All backends are throttled. Retry after 3 seconds.");
        h.Transport.Hosts.Should().Equal("a", "b", "c");
        exhausted.Should().ContainSingle();
        exhausted[0].StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        exhausted[0].RetryAfter.Should().Be(TimeSpan.FromMilliseconds(2500));
        exhausted[0].AttemptCount.Should().Be(3);
    }

    [Fact]
    public async Task Exhausted_answers_503_when_no_backend_throttled()
    {
        using var h = Harness(o => o.DefaultCooldown = TimeSpan.FromSeconds(4));
        h.Transport
            .Respond("a", HttpStatusCode.InternalServerError)
            .Respond("b", HttpStatusCode.BadGateway)
            .Throw("c", new HttpRequestException("Connection refused"));

        using var response = await h.Client.GetAsync("/");

        response.StatusCode.Should().Be(HttpStatusCode.ServiceUnavailable);
        response.Headers.GetValues("Retry-After").Should().Equal("4");
        response.Headers.GetValues("retry-after-ms").Should().Equal("4002");
        h.StateOf("c")!.Value.Reason.Should().Be(BackendUnavailableReason.TransportError);
    }

    [Fact]
    public async Task When_everything_is_already_unavailable_no_backend_is_called()
    {
        using var h = Harness();
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "10"))
            .Respond("b", HttpStatusCode.TooManyRequests, ("Retry-After", "20"))
            .Respond("c", HttpStatusCode.TooManyRequests, ("Retry-After", "30"));
        (await h.Client.GetAsync("/")).Dispose();
        h.Time.Advance(TimeSpan.FromSeconds(2.5));

        using var response = await h.Client.GetAsync("/");

        h.Transport.Requests.Should().HaveCount(3);
        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.GetValues("Retry-After").Should().Equal("8");
        response.Headers.GetValues("retry-after-ms").Should().Equal("7502");
    }

    [Theory]
    [InlineData(HttpStatusCode.BadRequest)]
    [InlineData(HttpStatusCode.Unauthorized)]
    [InlineData(HttpStatusCode.Forbidden)]
    [InlineData(HttpStatusCode.NotFound)]
    [InlineData(HttpStatusCode.Created)]
    public async Task Other_outcomes_return_unchanged_without_failover(HttpStatusCode status)
    {
        using var h = Harness();
        h.Transport.Respond("a", status, ("x-custom", "kept"));

        using var response = await h.Client.GetAsync("/");

        response.StatusCode.Should().Be(status);
        response.Headers.GetValues("x-custom").Should().Equal("kept");
        (await response.Content.ReadAsStringAsync()).Should().Be("a");
        h.Transport.Hosts.Should().Equal("a");
        h.Store.Count.Should().Be(0);
    }

    [Fact]
    public async Task Timeouts_and_transport_errors_fail_over()
    {
        using var h = Harness();
        h.Transport.Throw("a", new TimeoutRejectedException()).Throw("b", new HttpRequestException("reset"));

        using var response = await h.Client.GetAsync("/");

        (await response.Content.ReadAsStringAsync()).Should().Be("c");
        h.StateOf("a")!.Value.Reason.Should().Be(BackendUnavailableReason.Timeout);
        h.StateOf("b")!.Value.Reason.Should().Be(BackendUnavailableReason.TransportError);
    }

    [Fact]
    public async Task A_408_is_a_timeout()
    {
        using var h = Harness();
        h.Transport.Respond("a", HttpStatusCode.RequestTimeout);

        (await h.Client.GetAsync("/")).Dispose();

        h.StateOf("a")!.Value.Reason.Should().Be(BackendUnavailableReason.Timeout);
    }

    [Fact]
    public async Task A_5xx_with_retry_after_counts_as_throttling()
    {
        using var h = Harness();
        h.Transport.Respond("a", HttpStatusCode.ServiceUnavailable, ("Retry-After", "3"));

        (await h.Client.GetAsync("/")).Dispose();

        h.StateOf("a").Should().Be(new BackendUnavailability(h.Time.GetUtcNow().AddSeconds(3), BackendUnavailableReason.Throttled));
    }

    [Fact]
    public async Task Cooldowns_are_clamped_to_max_cooldown()
    {
        using var h = Harness(o => o.MaxCooldown = TimeSpan.FromSeconds(30));
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "86400"));

        (await h.Client.GetAsync("/")).Dispose();

        h.StateOf("a")!.Value.Until.Should().Be(h.Time.GetUtcNow().AddSeconds(30));
    }

    [Fact]
    public async Task A_re_failure_extends_and_never_shortens()
    {
        using var h = Harness(backends: [RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2)]);
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "10"));
        (await h.Client.GetAsync("/")).Dispose();
        var first = h.StateOf("a")!.Value.Until;

        // Another replica's late report with a shorter deadline does not shorten it.
        await h.Store.MarkUnavailableAsync(RoutingHarness.Key("a"), new(first.AddSeconds(-8), BackendUnavailableReason.Throttled), h.Time.GetUtcNow(), default);
        h.StateOf("a")!.Value.Until.Should().Be(first);

        h.Time.Advance(TimeSpan.FromSeconds(10));
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "20"));
        (await h.Client.GetAsync("/")).Dispose();
        h.StateOf("a")!.Value.Until.Should().Be(first.AddSeconds(20));
    }

    [Fact]
    public async Task Discarded_responses_are_disposed_and_the_returned_one_is_not()
    {
        using var h = Harness();
        var discarded = new DisposeTrackingContent("throttled");
        var kept = new DisposeTrackingContent("ok");
        h.Transport
            .Respond("a", _ => new HttpResponseMessage(HttpStatusCode.TooManyRequests) { Content = discarded })
            .Respond("b", _ => new HttpResponseMessage(HttpStatusCode.OK) { Content = kept });

        using var response = await h.Client.GetAsync("/");

        discarded.IsDisposed.Should().BeTrue();
        kept.IsDisposed.Should().BeFalse();
        (await response.Content.ReadAsStringAsync()).Should().Be("ok");
    }

    [Fact]
    public async Task Caller_cancellation_stops_at_once_and_marks_nothing()
    {
        using var h = Harness();
        using var cts = new CancellationTokenSource();
        h.Transport.Respond("a", _ =>
        {
            cts.Cancel();
            throw new TaskCanceledException("caller gave up", null, cts.Token);
        });

        var act = () => h.Client.GetAsync("/", cts.Token);

        await act.Should().ThrowAsync<OperationCanceledException>();
        h.Transport.Hosts.Should().Equal("a");
        h.Store.Count.Should().Be(0);
    }

    [Fact]
    public async Task A_cancellation_the_caller_did_not_ask_for_is_a_timeout()
    {
        using var h = Harness();
        h.Transport.Respond("a", _ => throw new TaskCanceledException("inner timeout"));

        using var response = await h.Client.GetAsync("/");

        (await response.Content.ReadAsStringAsync()).Should().Be("b");
        h.StateOf("a")!.Value.Reason.Should().Be(BackendUnavailableReason.Timeout);
    }

    [Fact]
    public async Task Max_attempts_caps_the_failovers()
    {
        using var h = Harness(o => o.MaxAttempts = 1);
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "5"));

        using var response = await h.Client.GetAsync("/");

        h.Transport.Hosts.Should().Equal("a");
        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.GetValues("retry-after-ms").Should().Equal(["0"], "b is still free: retry at once");
    }

    [Fact]
    public async Task A_backend_whose_throttle_ends_during_the_call_serves_it_rather_than_an_answer_saying_come_back_now()
    {
        using var h = await ThrottleEndingDuringTheCallAsync();

        using var response = await h.Client.GetAsync("/");

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        (await response.Content.ReadAsStringAsync()).Should().Be("a");
        h.Transport.Hosts.Should().Equal("a");
    }

    [Fact]
    public async Task A_synchronous_send_whose_backend_throttle_ends_during_the_call_is_served_rather_than_told_to_come_back_now()
    {
        using var h = await ThrottleEndingDuringTheCallAsync();

        using var response = h.Client.Send(new HttpRequestMessage(HttpMethod.Post, "/x") { Content = new StringContent("body") });

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("a");
        h.Transport.Requests.Select(r => r.Body).Should().Equal("body");
    }

    [Fact]
    public async Task A_no_failover_caller_whose_backend_throttle_ends_during_the_call_is_sent_once_and_gets_that_backend_answer()
    {
        // The selection once more is no second send: the request goes to one backend, and is answered with its Retry-After.
        using var h = await ThrottleEndingDuringTheCallAsync();
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("retry-after-ms", "20000"));
        using var request = new HttpRequestMessage(HttpMethod.Get, "/");
        request.Options.Set(PriorityRoutingRequestOptions.Hints, new PriorityRoutingHints { NoFailover = true });

        using var response = await h.Client.SendAsync(request);

        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(20));
        response.Headers.GetValues("retry-after-ms").Should().Equal(["20002"], "a's own Retry-After as every exhausted answer gives it: b, open now, is not the request's");
        h.Transport.Hosts.Should().Equal("a");
    }

    [Fact]
    public async Task A_call_that_spent_MaxAttempts_sends_nothing_more_when_a_throttle_ends_during_it_and_its_retry_is_served_there()
    {
        // b is out for 1 s and its deadline passes while a (MaxAttempts = 1) is throttled for 20 s: the selection once more
        // may not send a second attempt, so the answer says what is true — b is open now — and the caller's retry gets b.
        var time = new FakeTimeProvider(RoutingHarness.Start);
        var store = new ClockAdvancingStore(time);
        using var h = new RoutingHarness(o => { o.Randomizer = _ => 0; o.StateStore = store; o.MaxAttempts = 1; }, null, time, RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2));
        await store.MarkUnavailableAsync(RoutingHarness.Key("b"), new BackendUnavailability(time.GetUtcNow().AddSeconds(1), BackendUnavailableReason.Throttled, time.GetUtcNow()), time.GetUtcNow(), default);
        h.Transport.Respond("a", _ =>
        {
            time.Advance(TimeSpan.FromSeconds(1));
            var throttled = new HttpResponseMessage(HttpStatusCode.TooManyRequests);
            throttled.Headers.TryAddWithoutValidation("retry-after-ms", "20000");
            return throttled;
        });

        using var exhausted = await h.Client.GetAsync("/").WaitAsync(TimeSpan.FromSeconds(30));
        using var retry = await h.Client.GetAsync("/");

        exhausted.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        exhausted.Headers.GetValues("retry-after-ms").Should().Equal(["0"], "b is open now: the caller may come back at once");
        exhausted.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.Zero);
        retry.StatusCode.Should().Be(HttpStatusCode.OK);
        (await retry.Content.ReadAsStringAsync()).Should().Be("b");
        h.Transport.Hosts.Should().Equal(["a", "b"], "one attempt per call: the selection once more sends nothing beyond MaxAttempts");
    }

    [Fact]
    public async Task With_MaxQueueWait_a_backend_whose_throttle_ends_during_the_call_serves_the_caller_at_once_rather_than_making_it_wait()
    {
        // The exhausted answer, read after the deadline passed, has nothing to wait for: the call selects once more and a
        // serves it, with the clock where the store left it (a wait would end only if the test moved the clock on).
        using var h = await ThrottleEndingDuringTheCallAsync(o => o.MaxQueueWait = TimeSpan.FromSeconds(10));

        using var response = await h.Client.GetAsync("/").WaitAsync(TimeSpan.FromSeconds(30));

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        (await response.Content.ReadAsStringAsync()).Should().Be("a");
        h.Transport.Hosts.Should().Equal("a");
        h.Time.GetUtcNow().Should().Be(RoutingHarness.Start.AddSeconds(1));
    }

    [Fact]
    public async Task With_MaxQueueWait_a_synchronous_send_whose_backend_throttle_ends_during_the_call_is_served_at_once()
    {
        using var h = await ThrottleEndingDuringTheCallAsync(o => o.MaxQueueWait = TimeSpan.FromSeconds(10));

        using var response = await Task.Run(() => h.Client.Send(new HttpRequestMessage(HttpMethod.Post, "/x") { Content = new StringContent("body") }))
            .WaitAsync(TimeSpan.FromSeconds(30));

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("a");
        h.Transport.Requests.Select(r => r.Body).Should().Equal("body");
        h.Time.GetUtcNow().Should().Be(RoutingHarness.Start.AddSeconds(1));
    }

    [Fact]
    public async Task With_MaxQueueWait_a_no_failover_caller_whose_backend_throttle_ends_during_the_call_is_sent_once_and_gets_that_backend_answer()
    {
        // a's own 429 asks for 20 s, beyond the 10 s bound: answered at once with it, never sent to b, never made to wait.
        using var h = await ThrottleEndingDuringTheCallAsync(o => o.MaxQueueWait = TimeSpan.FromSeconds(10));
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("retry-after-ms", "20000"));
        using var request = new HttpRequestMessage(HttpMethod.Get, "/");
        request.Options.Set(PriorityRoutingRequestOptions.Hints, new PriorityRoutingHints { NoFailover = true });

        using var response = await h.Client.SendAsync(request).WaitAsync(TimeSpan.FromSeconds(30));

        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(20));
        h.Transport.Hosts.Should().Equal("a");
    }

    /// <summary>
    /// Both backends (a, then b) are throttled when the selection reads them; the clock passes their deadline right
    /// after its last read, before the exhausted answer is computed. That answer would say "retry after 0" about a
    /// backend open now: the call selects once more instead.
    /// </summary>
    private static async Task<RoutingHarness> ThrottleEndingDuringTheCallAsync(Action<PriorityRoutingStrategyOptions>? configure = null)
    {
        var time = new FakeTimeProvider(RoutingHarness.Start);
        var store = new ClockAdvancingStore(time);
        var h = new RoutingHarness(o => { o.Randomizer = _ => 0; o.StateStore = store; configure?.Invoke(o); }, null, time, RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2));
        var until = time.GetUtcNow().AddSeconds(1);
        foreach (var name in new[] { "a", "b" })
        {
            await store.MarkUnavailableAsync(RoutingHarness.Key(name), new BackendUnavailability(until, BackendUnavailableReason.Throttled, time.GetUtcNow()), time.GetUtcNow(), default);
        }

        store.AdvanceAfterReading(RoutingHarness.Key("b"), TimeSpan.FromSeconds(1));
        return h;
    }

    [Fact]
    public async Task Should_handle_can_be_written_with_a_predicate_builder()
    {
        using var h = Harness(o => o.ShouldHandle = new PredicateBuilder<HttpResponseMessage>()
            .HandleResult(r => r.StatusCode == HttpStatusCode.Forbidden)
            .ToPriorityRoutingPredicate());
        h.Transport.Respond("a", HttpStatusCode.Forbidden).Respond("b", HttpStatusCode.TooManyRequests);

        using var response = await h.Client.GetAsync("/");

        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests, "429 is not handled by this predicate");
        h.Transport.Hosts.Should().Equal("a", "b");
        h.StateOf("a")!.Value.Reason.Should().Be(BackendUnavailableReason.Other);
    }

    [Fact]
    public async Task Should_handle_sees_the_backend()
    {
        var seen = new List<(string, int)>();
        using var h = Harness(o => o.ShouldHandle = args =>
        {
            seen.Add((args.BackendName, args.Priority));
            return new ValueTask<bool>(args.Outcome.Result?.StatusCode == HttpStatusCode.TooManyRequests);
        });
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests);

        (await h.Client.GetAsync("/")).Dispose();

        seen.Should().Equal(("a", 1), ("b", 1));
    }

    [Fact]
    public async Task On_backend_unavailable_reports_each_marked_backend()
    {
        var events = new List<OnBackendUnavailableArguments>();
        using var h = Harness(o => o.OnBackendUnavailable = args => { events.Add(args); return default; });
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "5")).Throw("b", new HttpRequestException("refused"));

        (await h.Client.GetAsync("/")).Dispose();

        events.Select(e => (e.BackendName, e.Priority, e.Reason, e.Cooldown, e.AttemptNumber)).Should().Equal(
            ("a", 1, BackendUnavailableReason.Throttled, TimeSpan.FromSeconds(5), 0),
            ("b", 1, BackendUnavailableReason.TransportError, TimeSpan.FromSeconds(10), 1));
        events[0].Outcome.Result!.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        events[1].Outcome.Exception.Should().BeOfType<HttpRequestException>();
    }

    [Fact]
    public async Task Events_reach_polly_telemetry_with_severities_and_strategy_name()
    {
        var listener = new RecordingTelemetryListener();
        var options = new PriorityRoutingStrategyOptions
        {
            Name = "routing",
            Backends = [RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2)],
            StateStore = new InMemoryBackendStateStore(),
            Randomizer = _ => 0,
        };
        var pipeline = new ResiliencePipelineBuilder<HttpResponseMessage> { Name = "pipeline", TelemetryListener = listener }
            .AddPriorityRouting(options)
            .Build();
        var transport = new RecordingHandler().Respond("a", HttpStatusCode.TooManyRequests).Respond("b", HttpStatusCode.TooManyRequests);
        using var client = new HttpClient(new ResilienceHandler(pipeline) { InnerHandler = transport });

        (await client.GetAsync("http://placeholder/")).Dispose();

        listener.Events.Where(e => e.Event != "PipelineExecuting" && e.Event != "PipelineExecuted")
            .Select(e => (e.Event, e.Severity, e.Strategy))
            .Should().Equal(
                ("ExecutionAttempt", ResilienceEventSeverity.Warning, "routing"),
                ("OnBackendUnavailable", ResilienceEventSeverity.Warning, "routing"),
                ("ExecutionAttempt", ResilienceEventSeverity.Warning, "routing"),
                ("OnBackendUnavailable", ResilienceEventSeverity.Warning, "routing"),
                ("OnBackendsExhausted", ResilienceEventSeverity.Information, "routing"));
    }

    [Fact]
    public async Task A_backend_already_out_is_reported_to_polly_once_per_attempt_not_again_as_unavailable()
    {
        var listener = new RecordingTelemetryListener();
        var store = new InMemoryBackendStateStore();
        var options = new PriorityRoutingStrategyOptions
        {
            Name = "routing",
            Backends = [RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2)],
            StateStore = store,
            Randomizer = _ => 0,
        };
        var pipeline = new ResiliencePipelineBuilder<HttpResponseMessage> { Name = "pipeline", TelemetryListener = listener }
            .AddPriorityRouting(options)
            .Build();
        var transport = new RecordingHandler().Respond("a", _ =>
        {
            // A concurrent request marked a while this one was in flight.
            store.Mark(RoutingHarness.Key("a"), new(DateTimeOffset.UtcNow.AddSeconds(30), BackendUnavailableReason.Throttled), DateTimeOffset.UtcNow);
            return new HttpResponseMessage(HttpStatusCode.TooManyRequests);
        });
        using var client = new HttpClient(new ResilienceHandler(pipeline) { InnerHandler = transport });

        (await client.GetAsync("http://placeholder/")).Dispose();

        listener.Events.Where(e => e.Event != "PipelineExecuting" && e.Event != "PipelineExecuted")
            .Select(e => (e.Event, e.Severity))
            .Should().Equal(
                ("ExecutionAttempt", ResilienceEventSeverity.Warning),
                ("ExecutionAttempt", ResilienceEventSeverity.Information));
    }

    [Fact]
    public async Task A_failing_store_never_fails_a_request()
    {
        using var h = Harness(o => o.StateStore = new ScriptedStore(mark: _ => throw new InvalidOperationException("store is down")));
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests);

        using var response = await h.Client.GetAsync("/");

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("a", "b");
    }

    [Fact]
    public async Task Post_bodies_are_identical_on_every_attempt()
    {
        using var h = Harness();
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests).Respond("b", HttpStatusCode.ServiceUnavailable);
        var payload = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

        using var response = await h.Client.PostAsync("/chat", new StreamContent(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(payload))));

        h.Transport.Requests.Select(r => r.Body).Should().Equal(payload, payload, payload);
    }

    [Fact]
    public async Task The_original_request_is_restored_for_an_outer_retry()
    {
        var transport = new RecordingHandler()
            .Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "0"))
            .Respond("b", HttpStatusCode.TooManyRequests, ("Retry-After", "0"));
        var backendA = new PriorityBackend { Name = "a", BaseAddress = new Uri("http://a/base/") };
        backendA.Headers["api-key"] = "key-a";
        var pipeline = new ResiliencePipelineBuilder<HttpResponseMessage>()
            .AddRetry(new HttpRetryStrategyOptions { MaxRetryAttempts = 2, Delay = TimeSpan.Zero, BackoffType = DelayBackoffType.Constant, UseJitter = false })
            .AddPriorityRouting(new PriorityRoutingStrategyOptions
            {
                Backends = [backendA, new PriorityBackend { Name = "b", BaseAddress = new Uri("http://b/other/") }],
                StateStore = new InMemoryBackendStateStore(),
                Randomizer = _ => 0,
            })
            .Build();
        using var client = new HttpClient(new ResilienceHandler(pipeline) { InnerHandler = transport });

        using var response = await client.GetAsync("http://placeholder/v1/x");

        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        transport.Requests.Select(r => r.Uri.AbsoluteUri).Should().Equal(
            "http://a/base/v1/x", "http://b/other/v1/x",
            "http://a/base/v1/x", "http://b/other/v1/x",
            "http://a/base/v1/x", "http://b/other/v1/x");
        transport.Requests.Where(r => r.Host == "b").Should().OnlyContain(r => !r.Headers.ContainsKey("api-key"));
        transport.Requests.Where(r => r.Host == "a").Should().OnlyContain(r => r.Headers["api-key"] == "key-a");
    }

    [Fact]
    public void Synchronous_send_fails_over_too()
    {
        using var h = Harness();
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests);

        using var response = h.Client.Send(new HttpRequestMessage(HttpMethod.Post, "/x") { Content = new StringContent("body") });

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("a", "b");
        h.Transport.Requests.Select(r => r.Body).Should().Equal("body", "body");
    }

    [Fact]
    public async Task Without_a_request_message_the_outcome_explains_how_to_use_the_strategy()
    {
        var pipeline = new ResiliencePipelineBuilder<HttpResponseMessage>()
            .AddPriorityRouting(new PriorityRoutingStrategyOptions { Backends = [RoutingHarness.Backend("a", 1)] })
            .Build();

        var act = async () => await pipeline.ExecuteAsync(_ => new ValueTask<HttpResponseMessage>(new HttpResponseMessage()));

        (await act.Should().ThrowAsync<InvalidOperationException>()).Which.Message.Should().Contain("AddResilienceHandler");
    }

    [Fact]
    public async Task A_store_that_observes_the_callers_cancellation_does_not_leak_the_discarded_response()
    {
        using var cts = new CancellationTokenSource();
        using var h = Harness(o => o.StateStore = new ScriptedStore(mark: ct => ct.IsCancellationRequested ? ValueTask.FromCanceled(ct) : default));
        var discarded = new DisposeTrackingContent("throttled");
        h.Transport.Respond("a", _ =>
        {
            cts.Cancel();
            return new HttpResponseMessage(HttpStatusCode.TooManyRequests) { Content = discarded };
        });

        var act = () => h.Client.GetAsync("/", cts.Token);

        await act.Should().ThrowAsync<OperationCanceledException>();
        discarded.IsDisposed.Should().BeTrue();
        h.Transport.Hosts.Should().Equal("a");
    }

    [Fact]
    public async Task A_throwing_callback_on_a_spent_budget_does_not_leak_the_answer_it_reports()
    {
        using var h = Harness(o => o.OnBackendUnavailable = _ => throw new InvalidOperationException("callback failed"));
        var answer = new DisposeTrackingContent("spent");
        h.Transport.Respond("a", _ => new HttpResponseMessage(HttpStatusCode.OK)
        {
            Content = answer,
            Headers = { { "x-ratelimit-remaining-requests", "0" }, { "x-ratelimit-reset-requests", "2s" } },
        });

        var act = () => h.Client.GetAsync("/");

        (await act.Should().ThrowAsync<InvalidOperationException>()).Which.Message.Should().Be("callback failed");
        answer.IsDisposed.Should().BeTrue("nobody else will see the answer: its connection goes back to the pool");
        h.Transport.Hosts.Should().Equal("a");
    }

    [Fact]
    public async Task A_far_deadline_in_the_store_still_gives_an_exhausted_answer_clamped_to_the_longest_cooldown()
    {
        using var h = Harness(backends: [RoutingHarness.Backend("a", 1)]);
        await h.Store.MarkUnavailableAsync(RoutingHarness.Key("a"), new BackendUnavailability(DateTimeOffset.MaxValue, BackendUnavailableReason.Other), h.Time.GetUtcNow(), default);

        using var response = await h.Client.GetAsync("/");

        response.StatusCode.Should().Be(HttpStatusCode.ServiceUnavailable);
        response.Headers.GetValues("Retry-After").Should().Equal("300");
        h.Transport.Requests.Should().BeEmpty();
    }

    [Fact]
    public async Task A_store_whose_reads_fail_routes_as_if_nothing_were_marked()
    {
        using var h = Harness(o => o.StateStore = new ScriptedStore(read: _ => throw new InvalidOperationException("store is down"), mark: _ => ValueTask.FromException(new InvalidOperationException("store is down"))));
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests);

        using var response = await h.Client.GetAsync("/");

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("a", "b");
    }
}
