using System.Globalization;
using System.Net;
using System.Text;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Routing;

/// <summary>
/// Per-request properties that must hold on every path, whichever features meet: <see cref="PriorityRoutingHints.NoFailover"/>
/// with soft affinity, with a backend left in rotation, and with waits; a soft key against tiers.
/// </summary>
public class RequestPlanTests
{
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(10);

    [Theory]
    [InlineData("hint")]
    [InlineData("user")]
    [InlineData("prompt_cache_key")]
    public async Task No_failover_keeps_a_request_with_a_soft_key_on_the_key_s_backend_when_it_fails(string keySource)
    {
        var draws = 0;
        using var h = new RoutingHarness(
            o =>
            {
                o.Randomizer = bound => draws++ % bound;
                o.Affinity.Store = new InMemoryAffinityStore();
            },
            RoutingHarness.Backend("a", 1),
            RoutingHarness.Backend("b", 1),
            RoutingHarness.Backend("c", 1));
        (await h.Client.SendAsync(Keyed(keySource, noFailover: false))).Dispose();
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "30"));

        using var response = await h.Client.SendAsync(Keyed(keySource, noFailover: true));

        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(30), "the one backend's own Retry-After");
        h.Transport.Hosts.Should().Equal(["a", "a"], "the key's backend was the request's one backend");
    }

    [Theory]
    [InlineData(HttpStatusCode.TooManyRequests, "0")]
    [InlineData(HttpStatusCode.ServiceUnavailable, null)]
    public async Task No_failover_sends_a_request_once_when_its_backend_s_failure_leaves_it_in_rotation(HttpStatusCode status, string? retryAfter)
    {
        using var h = new RoutingHarness(
            o =>
            {
                o.Randomizer = _ => 0;
                o.DefaultCooldown = TimeSpan.Zero;
            },
            RoutingHarness.Backend("a", 1),
            RoutingHarness.Backend("b", 1),
            RoutingHarness.Backend("c", 1));
        h.Transport.Respond("a", status, retryAfter is null ? [] : [("Retry-After", retryAfter)]);

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent("{}") };
        request.Options.Set(PriorityRoutingRequestOptions.Hints, new PriorityRoutingHints { NoFailover = true });
        using var response = await h.Client.SendAsync(request);

        response.StatusCode.Should().Be(status);
        h.Transport.Hosts.Should().Equal(["a"], "a request that may not fail over is sent once");
    }

    /// <summary>
    /// Seed 180 of <c>EveryFeatureProperties</c>: a request that may not fail over, answered 429 <c>Retry-After: 0</c>
    /// by its one backend, is answered with that backend's own "now" — the backend is free again, and no probe is in
    /// flight (the 1 s of docs/reliability.md row 32 is for a probe still deciding) — and the next request is admitted
    /// there at once.
    /// </summary>
    [Fact]
    public async Task No_failover_answered_retry_after_0_by_its_probed_backend_tells_the_caller_now_and_frees_the_backend()
    {
        using var h = new RoutingHarness(
            o =>
            {
                o.Randomizer = _ => 0;
                o.DefaultCooldown = TimeSpan.FromSeconds(1);
                o.OutlierEjection = new OutlierEjectionOptions { Enabled = true, ConsecutiveFailures = 1, BaseEjectionTime = TimeSpan.FromSeconds(2) };
            },
            RoutingHarness.Backend("a", 1),
            RoutingHarness.Backend("b", 2));
        h.Transport.Respond("a", HttpStatusCode.InternalServerError);
        (await h.Client.GetAsync("/v1/models")).Dispose();
        Advance(h, TimeSpan.FromSeconds(2));

        // a's ejection is over: this request is its probe, and a answers "come back now".
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "0"));
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        request.Options.Set(PriorityRoutingRequestOptions.Hints, new PriorityRoutingHints { NoFailover = true });
        using var response = await h.Client.SendAsync(request);

        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.Zero, "the one backend's own Retry-After, with no probe left deciding");
        response.Headers.GetValues(PriorityRoutingConstants.RetryAfterMillisecondsHeader).Should().Equal("0");
        h.Transport.Respond("a", HttpStatusCode.OK);
        using var next = await h.Client.GetAsync("/v1/models");
        next.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal(["a", "b", "a", "a"], "the probe's answer freed a: the next request goes there at once");
    }

    [Fact]
    public async Task No_failover_keeps_a_request_that_waited_for_a_refill_on_its_one_backend()
    {
        var pick = 0;
        using var h = new RoutingHarness(
            o =>
            {
                o.Randomizer = bound => pick % bound;
                o.MaxQueueWait = Window;
            },
            RoutingHarness.Backend("a", 1),
            RoutingHarness.Backend("b", 1));
        h.Transport.Respond("a", _ => WithBudget(HttpStatusCode.OK));
        (await h.Client.SendAsync(Chat(noFailover: false))).Dispose();

        // a throttles for 5 s; its budget has room after that, within the bound: the request waits for a.
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "5"));
        var waiting = h.Client.SendAsync(Chat(noFailover: true));
        waiting.IsCompleted.Should().BeFalse("the request waits for its one backend");

        h.Transport.Respond("a", _ => WithBudget(HttpStatusCode.OK));
        pick = 1;
        Advance(h, TimeSpan.FromSeconds(5));
        using var response = await waiting;

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal(["a", "a", "a"], "after the wait the request goes back to its one backend, not to b");
    }

    [Fact]
    public async Task A_soft_key_moved_to_a_lower_tier_returns_to_the_better_tier_once_it_is_available()
    {
        using var h = new RoutingHarness(
            o =>
            {
                o.Randomizer = _ => 0;
                o.Affinity.Store = new InMemoryAffinityStore();
            },
            RoutingHarness.Backend("ptu", 1),
            RoutingHarness.Backend("paygo", 2));
        (await h.Client.SendAsync(Keyed("hint", noFailover: false))).Dispose();
        h.Transport.Respond("ptu", HttpStatusCode.TooManyRequests, ("Retry-After", "30"));
        (await h.Client.SendAsync(Keyed("hint", noFailover: false))).Dispose();
        h.Transport.Respond("ptu", HttpStatusCode.OK);

        h.Time.Advance(TimeSpan.FromSeconds(31));
        (await h.Client.SendAsync(Keyed("hint", noFailover: false))).Dispose();
        (await h.Client.SendAsync(Keyed("hint", noFailover: false))).Dispose();

        h.Transport.Hosts.Should().Equal(["ptu", "ptu", "paygo", "ptu", "ptu"], "the key follows the best tier back once it is available");
    }

    [Fact]
    public async Task A_soft_key_on_the_best_tier_still_keeps_its_backend_among_equals()
    {
        var draws = 0;
        using var h = new RoutingHarness(
            o =>
            {
                o.Randomizer = bound => draws++ % bound;
                o.Affinity.Store = new InMemoryAffinityStore();
            },
            RoutingHarness.Backend("a", 1),
            RoutingHarness.Backend("b", 1),
            RoutingHarness.Backend("paygo", 2));
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "30"));
        (await h.Client.SendAsync(Keyed("hint", noFailover: false))).Dispose();
        h.Time.Advance(TimeSpan.FromSeconds(31));
        h.Transport.Respond("a", HttpStatusCode.OK);

        (await h.Client.SendAsync(Keyed("hint", noFailover: false))).Dispose();
        (await h.Client.SendAsync(Keyed("hint", noFailover: false))).Dispose();

        h.Transport.Hosts.Should().Equal(["a", "b", "b", "b"], "b is of the best tier: the key stays there though a is back");
    }

    [Fact]
    public void Acquiring_without_shared_reservations_completes_at_once_and_allocates_nothing()
    {
        // The GET fast path with reservations off: the acquisition the loop awaits is a completed ValueTask of a struct.
        var store = new InMemoryBackendStateStore();
        var options = new PriorityRoutingStrategyOptions { Backends = { RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2) }, StateStore = store };
        var pool = new BackendPool(options, new SharedBackendState(store), new Microsoft.Extensions.Time.Testing.FakeTimeProvider(RoutingHarness.Start));
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        var plan = new RequestPlan(new RequestRoute(null), new BackendSet(2), new RequestFacts(request, null, default, null), null, 2, null);
        var context = ResilienceContextPool.Shared.Get();
        Acquire();

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1_000; i++)
        {
            Acquire();
        }

        (GC.GetAllocatedBytesForCurrentThread() - before).Should().Be(0);
        ResilienceContextPool.Shared.Return(context);

        void Acquire()
        {
            var acquiring = RequestPlan.AcquireAsync(plan, pool, static (_, _, _) => { }, context);
            if (!acquiring.IsCompletedSuccessfully || acquiring.Result.Lease is not { } lease)
            {
                throw new InvalidOperationException("The acquisition did not complete at once with a lease.");
            }

            lease.Dispose();
        }
    }

    private static HttpRequestMessage Keyed(string keySource, bool noFailover)
    {
        var body = keySource switch
        {
            "user" => """{"messages":[],"user":"u-1"}""",
            "prompt_cache_key" => """{"messages":[],"prompt_cache_key":"pck-1"}""",
            _ => """{"messages":[]}""",
        };
        var request = new HttpRequestMessage(HttpMethod.Post, "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21")
        {
            Content = new StringContent(body, Encoding.UTF8, "application/json"),
        };
        request.Options.Set(
            PriorityRoutingRequestOptions.Hints,
            new PriorityRoutingHints { AffinityKey = keySource == "hint" ? "session-1" : null, NoFailover = noFailover });
        return request;
    }

    private static HttpRequestMessage Chat(bool noFailover)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent("""{"messages":[{"role":"user","content":"hi"}],"max_tokens":100}""", Encoding.UTF8, "application/json"),
        };
        request.Options.Set(PriorityRoutingRequestOptions.Hints, new PriorityRoutingHints { NoFailover = noFailover });
        return request;
    }

    /// <summary>An answer reporting a 10,000-token budget per 10 s with plenty left.</summary>
    private static HttpResponseMessage WithBudget(HttpStatusCode status)
    {
        var response = new HttpResponseMessage(status) { Content = new StringContent("{}") };
        response.Headers.TryAddWithoutValidation("x-ratelimit-remaining-tokens", 9000.ToString(CultureInfo.InvariantCulture));
        response.Headers.TryAddWithoutValidation("x-ratelimit-limit-tokens", "10000");
        response.Headers.TryAddWithoutValidation("x-ratelimit-reset-tokens", "10s");
        return response;
    }

    private static void Advance(RoutingHarness h, TimeSpan delta) => h.AdvanceOffContext(delta);
}
