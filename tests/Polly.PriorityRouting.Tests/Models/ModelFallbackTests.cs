using System.Globalization;
using System.Net;
using System.Text;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Models;

/// <summary>
/// Model fallbacks meeting the other per-request rules, on a fake clock: attempts per model, hints, no failover,
/// pinned ids, synchronous sends, the chain's exhausted answer, context-window chains.
/// </summary>
public class ModelFallbackTests
{
    [Fact]
    public async Task A_throttled_model_goes_straight_to_its_fallback_until_the_throttle_ends()
    {
        using var h = Harness(o => o.ModelFallbacks["gpt-4o"] = ["mini"], Serving("a", 1, ("gpt-4o", "gpt-4o-ptu")), Serving("b", 1, ("mini", "mini-deploy")));
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "30"));

        (await h.Client.PostAsync("/v1/chat/completions", Chat("gpt-4o"))).Dispose();
        (await h.Client.PostAsync("/v1/chat/completions", Chat("gpt-4o"))).Dispose();
        h.Time.Advance(TimeSpan.FromSeconds(30));
        h.Transport.Respond("a", HttpStatusCode.OK);
        using var back = await h.Client.PostAsync("/v1/chat/completions", Chat("gpt-4o"));

        h.Transport.Hosts.Should().Equal("a", "b", "b", "a");
        back.Headers.GetValues("x-priority-routing-model").Should().Equal("gpt-4o");
    }

    [Fact]
    public async Task MaxAttempts_bounds_each_model_and_a_fallback_waits_for_the_models_last_available_backend()
    {
        using var h = Harness(
            o => { o.ModelFallbacks["gpt-4o"] = ["mini"]; o.MaxAttempts = 1; },
            Serving("a", 1, ("gpt-4o", "gpt-4o-ptu")),
            Serving("a2", 2, ("gpt-4o", "gpt-4o-payg")),
            Serving("b", 1, ("mini", "mini-deploy")));
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "30"));

        using var first = await h.Client.PostAsync("/v1/chat/completions", Chat("gpt-4o"));
        h.Transport.Respond("a2", HttpStatusCode.TooManyRequests, ("Retry-After", "30"));
        using var second = await h.Client.PostAsync("/v1/chat/completions", Chat("gpt-4o"));

        first.StatusCode.Should().Be(HttpStatusCode.TooManyRequests, "MaxAttempts was spent while a2 could still serve gpt-4o: no fallback");
        second.StatusCode.Should().Be(HttpStatusCode.OK);
        second.Headers.GetValues("x-priority-routing-model").Should().Equal("mini");
        h.Transport.Hosts.Should().Equal("a", "a2", "b");
    }

    [Fact]
    public async Task A_backend_serving_both_models_is_tried_once_for_each()
    {
        using var h = Harness(o => o.ModelFallbacks["gpt-4o"] = ["mini"], Serving("a", 1, ("gpt-4o", "gpt-4o-ptu"), ("mini", "mini-deploy")));
        h.Transport.Respond("a", request => new HttpResponseMessage(
            request.Content!.ReadAsStringAsync().Result.Contains("gpt-4o-ptu", StringComparison.Ordinal) ? HttpStatusCode.TooManyRequests : HttpStatusCode.OK));

        using var response = await h.Client.PostAsync("/v1/chat/completions", Chat("gpt-4o"));

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Requests.Select(r => r.Body).Should().Equal(ChatBody("gpt-4o-ptu"), ChatBody("mini-deploy"));
        h.StateOf("a", "gpt-4o-ptu")!.Value.Reason.Should().Be(BackendUnavailableReason.Throttled);
        h.StateOf("a", "mini-deploy").Should().BeNull();
    }

    [Theory]
    [InlineData("only")]
    [InlineData("excluded")]
    [InlineData("max-priority")]
    public async Task Hints_narrow_the_fallback_models_backends_too(string hint)
    {
        using var h = Harness(
            o => o.ModelFallbacks["gpt-4o"] = ["mini"],
            Serving("a", 1, ("gpt-4o", "gpt-4o-ptu")),
            Serving("b", 2, ("mini", "mini-deploy")),
            Serving("c", 1, ("mini", "mini-c")));
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "30"));
        var hints = hint switch
        {
            "only" => new PriorityRoutingHints { OnlyBackends = ["a", "b"] },
            "excluded" => new PriorityRoutingHints { ExcludedBackends = ["c"] },
            _ => new PriorityRoutingHints { MaxPriority = 1, ExcludedBackends = ["c"] },
        };

        using var response = await h.Client.SendAsync(Post(Chat("gpt-4o"), hints));

        if (hint == "max-priority")
        {
            response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
            response.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(30), "b is above the hint's tier, c excluded: a is the chain's only backend");
            h.Transport.Hosts.Should().Equal("a");
        }
        else
        {
            response.StatusCode.Should().Be(HttpStatusCode.OK);
            h.Transport.Hosts.Should().Equal("a", "b");
        }
    }

    [Fact]
    public async Task NoFailover_sends_once_and_never_falls_back()
    {
        using var h = Harness(o => o.ModelFallbacks["gpt-4o"] = ["mini"], Serving("a", 1, ("gpt-4o", "gpt-4o-ptu")), Serving("b", 1, ("mini", "mini-deploy")));
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "30"));

        using var response = await h.Client.SendAsync(Post(Chat("gpt-4o"), new PriorityRoutingHints { NoFailover = true }));

        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(30));
        h.Transport.Hosts.Should().Equal("a");
    }

    [Fact]
    public async Task A_request_pinned_to_a_backend_by_its_id_never_falls_back()
    {
        using var h = Harness(o => o.ModelFallbacks["gpt-4o"] = ["mini"], Serving("a", 1, ("gpt-4o", "gpt-4o-ptu")), Serving("b", 1, ("mini", "mini-deploy")));
        ((InMemoryAffinityStore)(h.Options.Affinity.Store ?? InMemoryAffinityStore.SharedOn(h.Time))).Pin("resp_fallback_1", "a@http://a", TimeSpan.FromDays(1));
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "30"));

        using var response = await h.Client.PostAsync(
            "/v1/responses",
            Json("{\"model\":\"gpt-4o\",\"previous_response_id\":\"resp_fallback_1\",\"input\":\"hi\"}"));

        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        h.Transport.Hosts.Should().Equal("a");
    }

    [Fact]
    public void A_synchronous_send_falls_back_with_the_rewritten_body()
    {
        using var h = Harness(o => o.ModelFallbacks["gpt-4o"] = ["mini"], Serving("a", 1, ("gpt-4o", "gpt-4o-ptu")), Serving("b", 1, ("mini", "mini-deploy")));
        h.Transport.Respond("a", HttpStatusCode.ServiceUnavailable);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = Chat("gpt-4o") };

        using var response = h.Client.Send(request);

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Requests.Select(r => r.Body).Should().Equal(ChatBody("gpt-4o-ptu"), ChatBody("mini-deploy"));
    }

    [Fact]
    public async Task The_exhausted_chain_answers_the_soonest_return_of_any_of_its_backends()
    {
        using var h = Harness(
            o => o.ModelFallbacks["gpt-4o"] = ["mini", "nano"],
            Serving("a", 1, ("gpt-4o", "gpt-4o-ptu")),
            Serving("b", 1, ("mini", "mini-deploy")),
            Serving("c", 1, ("nano", "nano-deploy")));
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "30"));
        h.Transport.Respond("b", HttpStatusCode.ServiceUnavailable);
        h.Transport.Respond("c", HttpStatusCode.TooManyRequests, ("Retry-After", "12"));

        using var response = await h.Client.PostAsync("/v1/chat/completions", Chat("gpt-4o"));

        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(10), "b's server error keeps it out for the default cooldown of 10 s, the soonest of the chain");
        h.Transport.Hosts.Should().Equal("a", "b", "c");
    }

    [Fact]
    public async Task A_request_that_waits_for_its_models_refill_starts_again_from_its_model_not_the_fallback()
    {
        using var h = Harness(
            o => { o.ModelFallbacks["gpt-4o"] = ["mini"]; o.MaxQueueWait = TimeSpan.FromSeconds(10); },
            Serving("a", 1, ("gpt-4o", "gpt-4o-ptu")),
            Serving("b", 1, ("mini", "mini-deploy")));
        var answers = 0;
        h.Transport.Respond("a", _ =>
        {
            // The first answer says the budget is spent until its refill in 10 s.
            var response = new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent("{}") };
            response.Headers.TryAddWithoutValidation("x-ratelimit-remaining-tokens", Interlocked.Increment(ref answers) == 1 ? "0" : "9000");
            response.Headers.TryAddWithoutValidation("x-ratelimit-limit-tokens", "10000");
            response.Headers.TryAddWithoutValidation("x-ratelimit-reset-tokens", "10s");
            return response;
        });
        h.Transport.Respond("b", HttpStatusCode.TooManyRequests, ("Retry-After", "30"));
        (await h.Client.PostAsync("/v1/chat/completions", Chat("gpt-4o"))).Dispose();

        var waiting = h.Client.PostAsync("/v1/chat/completions", Chat("gpt-4o"));
        h.Transport.Hosts.Should().Equal(["a", "b"], "a's budget is spent: the fallback is tried, and throttled for 30 s");
        waiting.IsCompleted.Should().BeFalse("a's refill in 10 s is within MaxQueueWait and sooner than the fallback's 30 s");
        Advance(h, TimeSpan.FromSeconds(10));
        using var response = await waiting.WaitAsync(TimeSpan.FromSeconds(30));

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        response.Headers.GetValues("x-priority-routing-model").Should().Equal("gpt-4o");
        h.Transport.Hosts.Should().Equal("a", "b", "a");
    }

    [Fact]
    public async Task A_fallback_whose_budget_cannot_admit_the_request_counts_until_its_refill_in_the_chains_Retry_After()
    {
        using var h = Harness(
            o => o.ModelFallbacks["gpt-4o"] = ["mini"],
            Serving("a", 1, ("gpt-4o", "gpt-4o-ptu")),
            Serving("b", 1, ("mini", "mini-deploy")));
        h.Transport.Respond("b", _ =>
        {
            // Some room left, less than the next request costs: b stays in rotation, its budget refills in 20 s.
            var answer = new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent("{}") };
            answer.Headers.TryAddWithoutValidation("x-ratelimit-remaining-tokens", "100");
            answer.Headers.TryAddWithoutValidation("x-ratelimit-limit-tokens", "10000");
            answer.Headers.TryAddWithoutValidation("x-ratelimit-reset-tokens", "20s");
            return answer;
        });
        (await h.Client.PostAsync("/v1/chat/completions", Chat("mini"))).Dispose();
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "30"));

        using var response = await h.Client.PostAsync("/v1/chat/completions", Json("{\"model\":\"gpt-4o\",\"max_tokens\":4000}"));

        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(20), "b's refill in 20 s is the soonest of the chain, not 'now'");
        h.Transport.Hosts.Should().Equal("b", "a");
    }

    [Fact]
    public async Task A_context_window_chain_is_walked_while_each_model_says_the_prompt_does_not_fit()
    {
        using var h = Harness(
            o => o.ContextWindowFallbacks["gpt-4o-8k"] = ["gpt-4o-32k", "gpt-4o-128k"],
            Serving("a", 1, ("gpt-4o-8k", "small")),
            Serving("b", 1, ("gpt-4o-32k", "medium")),
            Serving("c", 2, ("gpt-4o-128k", "large")));
        h.Transport.Respond("a", _ => ContextLengthExceeded());
        h.Transport.Respond("b", _ => ContextLengthExceeded());

        using var response = await h.Client.PostAsync("/v1/chat/completions", Chat("gpt-4o-8k"));

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        response.Headers.GetValues("x-priority-routing-model").Should().Equal("gpt-4o-128k");
        h.Transport.Requests.Select(r => r.Body).Should().Equal(ChatBody("small"), ChatBody("medium"), ChatBody("large"));
        (h.StateOf("a"), h.StateOf("a", "small"), h.StateOf("b", "medium")).Should().Be((null, null, null));
    }

    [Fact]
    public async Task A_prompt_too_long_for_its_model_goes_to_the_larger_model_not_to_another_backend_of_the_same_model()
    {
        using var h = Harness(
            o => o.ContextWindowFallbacks["gpt-4o-8k"] = ["gpt-4o-128k"],
            Serving("a", 1, ("gpt-4o-8k", "small")),
            Serving("a2", 1, ("gpt-4o-8k", "small-2")),
            Serving("c", 2, ("gpt-4o-128k", "large")));
        h.Transport.Respond("a", _ => ContextLengthExceeded());

        using var response = await h.Client.PostAsync("/v1/chat/completions", Chat("gpt-4o-8k"));

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("a", "c");
    }

    [Theory]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public async Task A_request_that_stays_on_its_model_gets_the_context_length_400_unchanged(bool noFailover, bool noModelFallback)
    {
        using var h = Harness(
            o => o.ContextWindowFallbacks["gpt-4o-8k"] = ["gpt-4o-128k"],
            Serving("a", 1, ("gpt-4o-8k", "small")),
            Serving("c", 2, ("gpt-4o-128k", "large")));
        h.Transport.Respond("a", _ => ContextLengthExceeded());

        using var response = await h.Client.SendAsync(Post(Chat("gpt-4o-8k"), new PriorityRoutingHints { NoFailover = noFailover, NoModelFallback = noModelFallback }));

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await response.Content.ReadAsStringAsync()).Should().Be(ContextLengthExceededBody);
        h.Transport.Hosts.Should().Equal("a");
    }

    [Fact]
    public async Task The_last_model_of_a_context_window_chain_returns_its_400_to_the_caller()
    {
        using var h = Harness(
            o => o.ContextWindowFallbacks["gpt-4o-8k"] = ["gpt-4o-32k"],
            Serving("a", 1, ("gpt-4o-8k", "small")),
            Serving("b", 1, ("gpt-4o-32k", "medium")));
        h.Transport.Respond("a", _ => ContextLengthExceeded());
        h.Transport.Respond("b", _ => ContextLengthExceeded());

        using var response = await h.Client.PostAsync("/v1/chat/completions", Chat("gpt-4o-8k"));

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await response.Content.ReadAsStringAsync()).Should().Be(ContextLengthExceededBody);
        h.Transport.Hosts.Should().Equal("a", "b");
    }

    [Fact]
    public async Task A_400_whose_body_is_too_slow_for_an_error_goes_back_with_every_byte_as_it_comes()
    {
        using var h = Harness(
            o => o.ContextWindowFallbacks["gpt-4o-8k"] = ["gpt-4o-128k"],
            Serving("a", 1, ("gpt-4o-8k", "small")),
            Serving("c", 2, ("gpt-4o-128k", "large")));
        var body = new ScriptedBodyStream().Send("{\"error\":");
        h.Transport.Respond("a", _ => new HttpResponseMessage(HttpStatusCode.BadRequest) { Content = new StreamContent(body) });

        var sending = h.Client.SendAsync(
            new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = Chat("gpt-4o-8k") },
            HttpCompletionOption.ResponseHeadersRead);
        await body.WhenReading().WaitAsync(TimeSpan.FromSeconds(30));
        sending.IsCompleted.Should().BeFalse("an error body that has not ended may still say the prompt does not fit");
        Advance(h, ContextLengthError.MaxReadTime);
        using var response = await sending.WaitAsync(TimeSpan.FromSeconds(30));
        body.Send("{\"code\":\"context_length_exceeded\"}}").End();

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await response.Content.ReadAsStringAsync()).Should().Be("{\"error\":{\"code\":\"context_length_exceeded\"}}");
        h.Transport.Hosts.Should().Equal("a");
    }

    [Theory]
    [InlineData("{\"error\":{\"code\":\"context_length_exceeded\"}}", true)]
    [InlineData("{\"code\":\"context_length_exceeded\",\"message\":\"too long\"}", true)]
    [InlineData("{\"error\":{\"code\":\"invalid_value\",\"message\":\"context_length_exceeded\"}}", false)]
    [InlineData("{\"error\":{\"details\":{\"inner\":{\"code\":\"context_length_exceeded\"}}}}", false)]
    [InlineData("not json \"code\":\"context_length_exceeded\"", false)]
    [InlineData("", false)]
    public void Only_the_error_code_says_the_prompt_does_not_fit(string body, bool expected)
        => ContextLengthError.IsContextLengthExceeded(Encoding.UTF8.GetBytes(body)).Should().Be(expected);

    private const string ContextLengthExceededBody = "{\"error\":{\"message\":\"too long\",\"type\":\"invalid_request_error\",\"code\":\"context_length_exceeded\"}}";

    /// <summary>a serves gpt-4o, b serves its fallback mini; the store moves the clock when told to (see <see cref="ClockAdvancingStore"/>).</summary>
    private static RoutingHarness GptFallingBackToMini(Microsoft.Extensions.Time.Testing.FakeTimeProvider time, ClockAdvancingStore store)
        => new(
            o => { o.Randomizer = _ => 0; o.StateStore = store; o.ModelFallbacks["gpt-4o"] = ["mini"]; },
            null,
            time,
            Serving("a", 1, ("gpt-4o", "gpt-4o-ptu")),
            Serving("b", 1, ("mini", "mini-deploy")));

    [Fact]
    public async Task A_first_models_backend_whose_throttle_ends_while_the_call_walks_the_fallbacks_serves_it_rather_than_an_answer_saying_come_back_now()
    {
        // a (gpt-4o) is throttled for 1 s, b (the fallback, mini) for 30 s; a's deadline passes right after the selection
        // read it, while the call walks on to mini and finds b out too.
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(RoutingHarness.Start);
        var store = new ClockAdvancingStore(time);
        using var h = GptFallingBackToMini(time, store);
        var now = time.GetUtcNow();
        await store.MarkUnavailableAsync(RoutingHarness.Key("a", "gpt-4o-ptu"), new BackendUnavailability(now.AddSeconds(1), BackendUnavailableReason.Throttled, now), now, default);
        await store.MarkUnavailableAsync(RoutingHarness.Key("b", "mini-deploy"), new BackendUnavailability(now.AddSeconds(30), BackendUnavailableReason.Throttled, now), now, default);
        store.AdvanceAfterReading(RoutingHarness.Key("a", "gpt-4o-ptu"), TimeSpan.FromSeconds(1));

        using var response = await h.Client.PostAsync("/v1/chat/completions", Chat("gpt-4o"));

        response.StatusCode.Should().Be(HttpStatusCode.OK, "a serves gpt-4o again: the caller is not told to come back now");
        response.Headers.GetValues("x-priority-routing-model").Should().Equal("gpt-4o");
        h.Transport.Requests.Select(r => r.Body).Should().Equal(ChatBody("gpt-4o-ptu"));
    }

    [Fact]
    public async Task A_first_models_backend_that_failed_in_the_call_is_not_sent_the_request_again_when_its_throttle_ends_while_the_call_walks_the_fallbacks()
    {
        // a (gpt-4o) answers this call 429 for 1 s; the call walks on to mini, whose b is out for 30 s, and a's deadline
        // passes meanwhile. A round tries a backend at most once for each model: a is not sent the request again.
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(RoutingHarness.Start);
        var store = new ClockAdvancingStore(time);
        using var h = GptFallingBackToMini(time, store);
        var now = time.GetUtcNow();
        await store.MarkUnavailableAsync(RoutingHarness.Key("b", "mini-deploy"), new BackendUnavailability(now.AddSeconds(30), BackendUnavailableReason.Throttled, now), now, default);
        h.Transport.Respond("a", _ =>
        {
            store.AdvanceAfterReading(RoutingHarness.Key("b", "mini-deploy"), TimeSpan.FromSeconds(1));
            return new HttpResponseMessage(HttpStatusCode.TooManyRequests) { Headers = { { "Retry-After", "1" } } };
        });

        using var response = await h.Client.PostAsync("/v1/chat/completions", Chat("gpt-4o"));

        h.Transport.Requests.Select(r => r.Body).Should().Equal([ChatBody("gpt-4o-ptu")], "a failed this call on gpt-4o once already");
        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
    }

    [Fact]
    public async Task A_first_model_that_spent_MaxAttempts_is_not_sent_more_when_another_of_its_backends_opens_while_the_call_walks_the_fallbacks()
    {
        // MaxAttempts 1: a (gpt-4o) answers 429 for 30 s while a2 (gpt-4o) is out for 1 s, so the call walks on to mini,
        // whose b is out for 30 s; a2's throttle ends meanwhile. gpt-4o spent its attempt: the call answers that a2 is
        // open now (as on one model) rather than send a second attempt to gpt-4o.
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(RoutingHarness.Start);
        var store = new ClockAdvancingStore(time);
        using var h = new RoutingHarness(
            o => { o.Randomizer = _ => 0; o.StateStore = store; o.ModelFallbacks["gpt-4o"] = ["mini"]; o.MaxAttempts = 1; },
            null,
            time,
            Serving("a", 1, ("gpt-4o", "gpt-4o-ptu")),
            Serving("a2", 2, ("gpt-4o", "gpt-4o-paygo")),
            Serving("b", 1, ("mini", "mini-deploy")));
        var now = time.GetUtcNow();
        await store.MarkUnavailableAsync(RoutingHarness.Key("a2", "gpt-4o-paygo"), new BackendUnavailability(now.AddSeconds(1), BackendUnavailableReason.Throttled, now), now, default);
        await store.MarkUnavailableAsync(RoutingHarness.Key("b", "mini-deploy"), new BackendUnavailability(now.AddSeconds(30), BackendUnavailableReason.Throttled, now), now, default);
        h.Transport.Respond("a", _ =>
        {
            store.AdvanceAfterReading(RoutingHarness.Key("b", "mini-deploy"), TimeSpan.FromSeconds(1));
            return new HttpResponseMessage(HttpStatusCode.TooManyRequests) { Headers = { { "Retry-After", "30" } } };
        });

        using var response = await h.Client.PostAsync("/v1/chat/completions", Chat("gpt-4o"));

        h.Transport.Hosts.Should().Equal(["a"], "MaxAttempts bounds each model's round");
        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.GetValues("retry-after-ms").Should().Equal("0");
    }

    [Fact]
    public async Task A_prompt_too_long_for_every_open_model_of_its_context_window_chain_is_told_the_larger_models_refill_not_to_come_back_now()
    {
        // 8k and 32k say the prompt does not fit (they stay in rotation: a 400 is not the backend's failure); 128k is out
        // for 30 s. Only 128k can serve the request: coming back sooner finds the same answers.
        using var h = Harness(
            o => o.ContextWindowFallbacks["gpt-4o-8k"] = ["gpt-4o-32k", "gpt-4o-128k"],
            Serving("a", 1, ("gpt-4o-8k", "small")),
            Serving("b", 1, ("gpt-4o-32k", "medium")),
            Serving("c", 2, ("gpt-4o-128k", "large")));
        var now = h.Time.GetUtcNow();
        await h.Store.MarkUnavailableAsync(RoutingHarness.Key("c", "large"), new BackendUnavailability(now.AddSeconds(30), BackendUnavailableReason.Throttled, now), now, default);
        h.Transport.Respond("a", _ => ContextLengthExceeded());
        h.Transport.Respond("b", _ => ContextLengthExceeded());

        using var response = await h.Client.PostAsync("/v1/chat/completions", Chat("gpt-4o-8k"));

        h.Transport.Hosts.Should().Equal("a", "b");
        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.GetValues("retry-after-ms").Should().Equal((30_000 + ExhaustedResponse.TimerSlackMilliseconds).ToString(CultureInfo.InvariantCulture));
    }

    private static HttpResponseMessage ContextLengthExceeded()
        => new(HttpStatusCode.BadRequest) { Content = new StringContent(ContextLengthExceededBody, Encoding.UTF8, "application/json") };

    private static string ChatBody(string model) => "{\"model\":\"" + model + "\",\"messages\":[]}";

    private static StringContent Chat(string model) => Json(ChatBody(model));

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private static HttpRequestMessage Post(HttpContent content, PriorityRoutingHints hints)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = content };
        request.Options.Set(PriorityRoutingRequestOptions.Hints, hints);
        return request;
    }

    private static PriorityBackend Serving(string name, int priority, params (string Logical, string Own)[] models)
    {
        var backend = RoutingHarness.Backend(name, priority);
        foreach (var (logical, own) in models)
        {
            backend.Models[logical] = own;
        }

        return backend;
    }

    private static void Advance(RoutingHarness h, TimeSpan delta) => h.AdvanceOffContext(delta);

    private static RoutingHarness Harness(Action<PriorityRoutingStrategyOptions> configure, params PriorityBackend[] backends)
        => new(o =>
        {
            o.Randomizer = _ => 0;
            o.Affinity.Store = new InMemoryAffinityStore();
            configure(o);
        }, backends);
}
