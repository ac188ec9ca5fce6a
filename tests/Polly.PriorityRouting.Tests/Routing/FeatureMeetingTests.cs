using System.Net;
using System.Text;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Routing;

/// <summary>
/// Where two features meet and no other test looked: model fallbacks with a soft-affinity key, a request pinned to a
/// backend at its in-flight cap, caps with model maps, declared quotas with queued waits, synchronous sends and a
/// pipeline rebuilt on its store. Each on a fake clock over the in-memory transport.
/// </summary>
public class FeatureMeetingTests
{
    private const string Pinned = "resp_pinned1";

    [Fact]
    public async Task A_soft_key_stays_on_its_backend_fails_over_within_its_model_first_and_returns_to_its_model_after_a_fallback()
    {
        var draw = 0;
        using var h = new RoutingHarness(
            o =>
            {
                o.Randomizer = bound => draw % bound;
                o.Affinity.Store = new InMemoryAffinityStore();
                o.ModelFallbacks["gpt-4o"] = ["mini"];
            },
            Serving("a", 1, ("gpt-4o", "gpt-4o-a")),
            Serving("a2", 1, ("gpt-4o", "gpt-4o-a2")),
            Serving("m", 1, ("mini", "mini-m")));

        (await h.Client.SendAsync(Keyed("gpt-4o"))).Dispose();
        draw = 1;
        (await h.Client.SendAsync(Keyed("gpt-4o"))).Dispose();
        h.Transport.Hosts.Should().Equal(["a", "a"], "the key stays on the backend that served it, whatever the draw");

        // Its backend throttles: the request fails over within its model, never to the fallback model.
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "30"));
        using (var sameModel = await h.Client.SendAsync(Keyed("gpt-4o")))
        {
            sameModel.Headers.GetValues("x-priority-routing-model").Should().Equal("gpt-4o");
        }

        // Every backend of the model throttles: the fallback serves, and the key follows it there.
        h.Transport.Respond("a2", HttpStatusCode.TooManyRequests, ("Retry-After", "30"));
        using (var fallback = await h.Client.SendAsync(Keyed("gpt-4o")))
        {
            fallback.Headers.GetValues("x-priority-routing-model").Should().Equal("mini");
        }

        // The model recovers: the key's backend (m) does not serve gpt-4o, so it holds nothing back.
        h.Time.Advance(TimeSpan.FromSeconds(30));
        h.Transport.Respond("a", HttpStatusCode.OK);
        h.Transport.Respond("a2", HttpStatusCode.OK);
        draw = 0;
        using var back = await h.Client.SendAsync(Keyed("gpt-4o"));

        back.Headers.GetValues("x-priority-routing-model").Should().Equal("gpt-4o");
        h.Transport.Hosts.Should().Equal(["a", "a", "a", "a2", "a2", "m", "a"]);
        h.Transport.Requests.Last().Body.Should().Be(ChatBody("gpt-4o-a", "k-1"), "the request goes back to its own model's name");
    }

    [Fact]
    public async Task A_request_pinned_to_a_backend_at_its_cap_is_answered_429_with_one_second_and_no_other_backend_sees_it()
    {
        using var h = await PinnedHarness(maxQueueWait: null);
        using var held = await h.Client.GetAsync("/v1/models", HttpCompletionOption.ResponseHeadersRead);

        using var pinned = await h.Client.GetAsync($"/openai/v1/responses/{Pinned}");

        pinned.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        pinned.Headers.RetryAfter!.Delta.Should().Be(PoolExhaustion.CapacityRetryAfter);
        h.Transport.Hosts.Should().Equal(["a"], "the id lives on a only: b never sees the read");
    }

    [Fact]
    public async Task With_MaxQueueWait_a_request_pinned_to_a_backend_at_its_cap_is_sent_there_when_its_slot_frees()
    {
        using var h = await PinnedHarness(maxQueueWait: TimeSpan.FromSeconds(5));
        var held = await h.Client.GetAsync("/v1/models", HttpCompletionOption.ResponseHeadersRead);

        var pinned = h.Client.GetAsync($"/openai/v1/responses/{Pinned}");
        pinned.IsCompleted.Should().BeFalse("the pinned read waits for a's only slot");
        held.Dispose();
        using var answer = await pinned;

        answer.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("a", "a");
    }

    [Fact]
    public async Task A_cap_counts_a_backend_s_requests_in_flight_across_every_model_it_serves()
    {
        var both = Serving("a", 1, ("gpt-4o", "gpt-4o-a"), ("mini", "mini-a"));
        both.MaxConcurrentRequests = 1;
        using var h = new RoutingHarness(o => o.Randomizer = _ => 0, both, Serving("m", 2, ("mini", "mini-m")));
        using var held = await Hold(h, "gpt-4o");

        using var mini = await h.Client.PostAsync("/v1/chat/completions", Chat("mini"));
        using var gpt = await h.Client.PostAsync("/v1/chat/completions", Chat("gpt-4o"));

        mini.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal(["a", "m"], "a's one slot is held by the gpt-4o answer: mini goes to m, gpt-4o has nowhere else");
        gpt.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        gpt.Headers.RetryAfter!.Delta.Should().Be(PoolExhaustion.CapacityRetryAfter);
    }

    [Fact]
    public async Task Every_backend_of_a_model_at_its_cap_sends_the_request_to_the_fallback_model()
    {
        var capped = Serving("a", 1, ("gpt-4o", "gpt-4o-a"));
        capped.MaxConcurrentRequests = 1;
        using var h = new RoutingHarness(
            o =>
            {
                o.Randomizer = _ => 0;
                o.ModelFallbacks["gpt-4o"] = ["mini"];
            },
            capped,
            Serving("m", 1, ("mini", "mini-m")));
        using var held = await Hold(h, "gpt-4o");

        using var fallback = await h.Client.PostAsync("/v1/chat/completions", Chat("gpt-4o"));

        fallback.Headers.GetValues("x-priority-routing-model").Should().Equal("mini");
        h.Transport.Hosts.Should().Equal("a", "m");
        h.Transport.Requests.Last().Body.Should().Be(ChatBody("mini-m"));
    }

    [Fact]
    public async Task A_model_whose_backends_declared_quota_is_spent_falls_back_and_the_chain_s_answer_promises_the_refill()
    {
        var declared = Serving("a", 1, ("gpt-4o", "gpt-4o-a"));
        declared.RequestsPerMinute = 1;
        var fallback = Serving("m", 1, ("mini", "mini-m"));
        using var h = new RoutingHarness(
            o =>
            {
                o.Randomizer = _ => 0;
                o.ModelFallbacks["gpt-4o"] = ["mini"];
            },
            declared,
            fallback);
        (await h.Client.PostAsync("/v1/chat/completions", Chat("gpt-4o"))).Dispose();
        h.Time.Advance(TimeSpan.FromSeconds(20));

        using (var fellBack = await h.Client.PostAsync("/v1/chat/completions", Chat("gpt-4o")))
        {
            fellBack.Headers.GetValues("x-priority-routing-model").Should().Equal("mini");
        }

        h.Transport.Respond("m", HttpStatusCode.TooManyRequests, ("Retry-After", "60"));
        using var exhausted = await h.Client.PostAsync("/v1/chat/completions", Chat("gpt-4o"));

        exhausted.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        exhausted.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(40), "a's declared minute refills 60 s after its first use, before m's 60 s");
        h.Transport.Hosts.Should().Equal("a", "m", "m");
    }

    [Fact]
    public async Task With_MaxQueueWait_a_request_beyond_the_declared_quota_waits_for_its_refill_and_is_sent_then()
    {
        using var h = new RoutingHarness(o => { o.Randomizer = _ => 0; o.MaxQueueWait = TimeSpan.FromMinutes(2); }, Declared("a", requestsPerMinute: 1));
        (await h.Client.GetAsync("/v1/models")).Dispose();
        h.Time.Advance(TimeSpan.FromSeconds(20));

        var waiting = h.Client.GetAsync("/v1/models");
        h.AdvanceOffContext(TimeSpan.FromSeconds(39));
        waiting.IsCompleted.Should().BeFalse("the declared quota refills a minute after its first use, 40 s from now");
        h.Transport.Hosts.Should().Equal("a");
        h.AdvanceOffContext(TimeSpan.FromSeconds(1));
        using var answer = await waiting;

        answer.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("a", "a");
    }

    [Fact]
    public async Task With_MaxQueueWait_a_synchronous_Send_beyond_the_declared_quota_waits_for_its_refill_and_is_sent_then()
    {
        var time = new LateTimerTimeProvider(RoutingHarness.Start);
        using var h = new RoutingHarness(o => { o.Randomizer = _ => 0; o.MaxQueueWait = TimeSpan.FromMinutes(2); }, null, time, Declared("a", requestsPerMinute: 1));
        h.Client.Send(new HttpRequestMessage(HttpMethod.Get, "/v1/models")).Dispose();
        h.Time.Advance(TimeSpan.FromSeconds(20));

        var waiting = Task.Run(() => h.Client.Send(new HttpRequestMessage(HttpMethod.Get, "/v1/models")));
        await time.WhenWaitingAsync(1);
        h.AdvanceOffContext(TimeSpan.FromSeconds(39));
        waiting.IsCompleted.Should().BeFalse("the declared quota refills a minute after its first use, 40 s after the wait began");
        h.AdvanceOffContext(TimeSpan.FromSeconds(1));
        using var answer = await waiting.WaitAsync(TimeSpan.FromSeconds(30));

        answer.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("a", "a");
    }

    [Fact]
    public void A_synchronous_Send_is_held_to_the_declared_quota_and_told_when_it_refills()
    {
        using var h = new RoutingHarness(o => o.Randomizer = _ => 0, Declared("a", requestsPerMinute: 2));

        h.Client.Send(new HttpRequestMessage(HttpMethod.Get, "/v1/models")).Dispose();
        h.Time.Advance(TimeSpan.FromSeconds(15));
        h.Client.Send(new HttpRequestMessage(HttpMethod.Get, "/v1/models")).Dispose();
        using var exhausted = h.Client.Send(new HttpRequestMessage(HttpMethod.Get, "/v1/models"));

        exhausted.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        exhausted.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(45));
        h.Transport.Hosts.Should().Equal("a", "a");
    }

    [Fact]
    public async Task A_pipeline_rebuilt_on_the_same_store_keeps_what_the_old_one_spent_of_the_declared_quota()
    {
        using var old = new RoutingHarness(o => o.Randomizer = _ => 0, Declared("a", requestsPerMinute: 2), RoutingHarness.Backend("b", 2));
        (await old.Client.GetAsync("/v1/models")).Dispose();
        (await old.Client.GetAsync("/v1/models")).Dispose();

        using var rebuilt = Rebuilt(old, requestsPerMinute: 2);
        (await rebuilt.Client.GetAsync("/v1/models")).Dispose();

        old.Transport.Hosts.Should().Equal("a", "a");
        rebuilt.Transport.Hosts.Should().Equal(["b"], "the old pipeline spent both of the minute's requests");
    }

    [Theory]
    [InlineData(4, new[] { "a", "a" })]
    [InlineData(3, new[] { "a", "b" })]
    [InlineData(2, new[] { "b", "b" })]
    public async Task A_reload_that_changes_a_declared_quota_moves_the_current_minute_s_room_by_the_difference(int reloaded, string[] expected)
    {
        // Three a minute, two spent: one left until the reload.
        using var old = new RoutingHarness(o => o.Randomizer = _ => 0, Declared("a", requestsPerMinute: 3), RoutingHarness.Backend("b", 2));
        (await old.Client.GetAsync("/v1/models")).Dispose();
        (await old.Client.GetAsync("/v1/models")).Dispose();

        using var rebuilt = Rebuilt(old, reloaded);
        (await rebuilt.Client.GetAsync("/v1/models")).Dispose();
        (await rebuilt.Client.GetAsync("/v1/models")).Dispose();

        rebuilt.Transport.Hosts.Should().Equal(expected, "the requests already sent this minute stay spent against the new quota");
    }

    private static RoutingHarness Rebuilt(RoutingHarness old, int requestsPerMinute)
        => new(o => { o.Randomizer = _ => 0; o.StateStore = old.Store; }, null, old.Time, Declared("a", requestsPerMinute), RoutingHarness.Backend("b", 2));

    private static async Task<RoutingHarness> PinnedHarness(TimeSpan? maxQueueWait)
    {
        var pins = new InMemoryAffinityStore();
        var capped = RoutingHarness.Backend("a", 1);
        capped.MaxConcurrentRequests = 1;
        var h = new RoutingHarness(
            o =>
            {
                o.Randomizer = _ => 0;
                o.Affinity.Store = pins;
                o.MaxQueueWait = maxQueueWait;
            },
            capped,
            RoutingHarness.Backend("b", 1));
        await pins.PinAsync(Pinned, RoutingHarness.Key("a").Backend, TimeSpan.FromHours(1), CancellationToken.None);
        return h;
    }

    /// <summary>An answer whose body is not read yet: it holds its backend's slot.</summary>
    private static Task<HttpResponseMessage> Hold(RoutingHarness h, string model)
        => h.Client.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = Chat(model) }, HttpCompletionOption.ResponseHeadersRead);

    private static HttpRequestMessage Keyed(string model)
        => new(HttpMethod.Post, "/v1/chat/completions") { Content = Json(ChatBody(model, "k-1")) };

    private static string ChatBody(string model, string? user = null)
        => "{\"model\":\"" + model + "\",\"messages\":[]" + (user is null ? string.Empty : ",\"user\":\"" + user + "\"") + "}";

    private static StringContent Chat(string model) => Json(ChatBody(model));

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private static PriorityBackend Serving(string name, int priority, params (string Logical, string Own)[] models)
    {
        var backend = RoutingHarness.Backend(name, priority);
        foreach (var (logical, own) in models)
        {
            backend.Models[logical] = own;
        }

        return backend;
    }

    private static PriorityBackend Declared(string name, int requestsPerMinute)
    {
        var backend = RoutingHarness.Backend(name, 1);
        backend.RequestsPerMinute = requestsPerMinute;
        return backend;
    }
}
