using System.Net;
using Microsoft.Extensions.Http.Resilience;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Routing;

/// <summary>
/// The defects of the issue "Backend state in one place": each test failed before a backend's state had one owner.
/// </summary>
public class BackendStateOwnershipTests
{
    [Fact]
    public async Task A_probe_whose_request_body_cannot_be_read_gives_the_probe_slot_back()
    {
        using var h = EjectedA();

        // The probe's caller fails to provide its body: the caller's exception, and a stays probeable.
        var act = () => h.Client.PostAsync("/", new ThrowingContent());
        (await act.Should().ThrowAsync<HttpRequestException>()).WithInnerException<IOException>().WithMessage("the caller's upload broke");
        h.Transport.Hosts.Should().HaveCount(10, "no backend saw the request");

        (await h.Client.GetAsync("/")).Dispose();
        h.Transport.Hosts.Should().EndWith("a", "the next request probes a");
    }

    [Fact]
    public async Task A_probe_cancelled_by_its_caller_gives_the_probe_slot_back()
    {
        using var h = EjectedA();
        using var cancellation = new CancellationTokenSource();
        h.Transport.Respond("a", _ =>
        {
            cancellation.Cancel();
            throw new OperationCanceledException(cancellation.Token);
        });

        var act = () => h.Client.GetAsync("/", cancellation.Token);
        await act.Should().ThrowAsync<OperationCanceledException>();

        h.Transport.Respond("a", HttpStatusCode.OK);
        (await h.Client.GetAsync("/")).Dispose();
        h.Transport.Hosts.Should().EndWith("a");
    }

    [Fact]
    public async Task A_predicate_that_throws_disposes_the_backend_answer_and_frees_the_probe()
    {
        var throwing = false;
        using var h = EjectedA(o => o.ShouldHandle = args => throwing && args.BackendName == "a"
            ? throw new InvalidOperationException("predicate broke")
            : new ValueTask<bool>(args.Outcome.Result?.StatusCode >= HttpStatusCode.InternalServerError));
        var content = new TrackingContent();
        h.Transport.Respond("a", _ => new HttpResponseMessage(HttpStatusCode.OK) { Content = content });
        throwing = true;

        var act = () => h.Client.GetAsync("/");
        await act.Should().ThrowAsync<InvalidOperationException>().WithMessage("predicate broke");

        content.Disposed.Should().BeTrue("nobody else will ever read that answer: its connection goes back to the pool");
        throwing = false;
        h.Transport.Respond("a", HttpStatusCode.OK);
        (await h.Client.GetAsync("/")).Dispose();
        h.Transport.Hosts.Should().EndWith("a", "the probe slot was freed");
    }

    [Fact]
    public async Task Requests_in_flight_when_a_backend_is_ejected_do_not_eject_it_again()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var h = new RoutingHarness(o => o.Randomizer = _ => 0, RoutingHarness.Backend("a", 1));
        using var gated = new HttpClient(new ResilienceHandler(h.Pipeline) { InnerHandler = new GateHandler(gate.Task, h.Transport) })
        {
            BaseAddress = new Uri("http://placeholder/"),
        };
        h.Transport.Respond("a", HttpStatusCode.InternalServerError);

        var inFlight = Enumerable.Range(0, 25).Select(_ => gated.GetAsync("/")).ToArray();
        gate.SetResult();
        foreach (var response in await Task.WhenAll(inFlight))
        {
            response.Dispose();
        }

        h.StateOf("a").Should().Be(
            new BackendUnavailability(h.Time.GetUtcNow().AddSeconds(30), BackendUnavailableReason.Ejected),
            "one episode of failures is one ejection (30 s), not five (150 s)");
    }

    [Fact]
    public async Task A_request_that_chose_a_backend_just_before_another_request_ejected_it_goes_elsewhere_and_does_not_eject_it_again()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(RoutingHarness.Start);
        var store = new InMemoryBackendStateStore();
        var route = new RequestRoute(null, cost: 0);
        BackendPool? pool = null;
        BackendLease failing = default;
        var ejectWhileChoosing = false;
        var options = new PriorityRoutingStrategyOptions
        {
            Backends = { RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2) },
            StateStore = store,
            OutlierEjection = { ConsecutiveFailures = 1 },
            Randomizer = _ =>
            {
                if (ejectWhileChoosing)
                {
                    // The interleaving of two threads: this request has read a in rotation; the other one's failure now
                    // ejects it, before this request is admitted.
                    ejectWhileChoosing = false;
                    using var error = new HttpResponseMessage(HttpStatusCode.InternalServerError);
                    pool!.RecordFailureAsync(failing, Outcome.FromResult(error), route, default).AsTask().GetAwaiter().GetResult();
                }

                return 0;
            },
        };
        pool = new BackendPool(options, new SharedBackendState(store), time);
        var first = new BackendSet(2);
        pool.TryAcquire(ref first, route, out failing).Should().BeTrue();

        ejectWhileChoosing = true;
        var second = new BackendSet(2);
        pool.TryAcquire(ref second, route, out var chosen).Should().BeTrue();
        using (chosen)
        {
            // Had it been sent to a, its failure would have counted in the new episode and ejected a a second time.
            chosen.Backend.Name.Should().Be("b", "a was ejected before this request was admitted");
            using var error = new HttpResponseMessage(HttpStatusCode.InternalServerError);
            await pool.RecordFailureAsync(chosen, Outcome.FromResult(error), route, default);
        }

        store.TryGetUnavailability(RoutingHarness.Key("a"), out var a).Should().BeTrue();
        a.Until.Should().Be(time.GetUtcNow() + TimeSpan.FromSeconds(30), "one episode, one ejection");
        failing.Dispose();
    }

    [Fact]
    public async Task A_backend_with_a_bearer_token_never_receives_the_callers_api_key()
    {
        var bearer = RoutingHarness.Backend("a", 1);
        bearer.BearerTokenProvider = _ => new ValueTask<string>("token-a");
        var keyed = RoutingHarness.Backend("b", 1);
        keyed.Headers["api-key"] = "key-b";
        var plain = RoutingHarness.Backend("c", 2);
        using var h = new RoutingHarness(o => o.Randomizer = _ => 0, bearer, keyed, plain);
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests).Respond("b", HttpStatusCode.TooManyRequests);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/");
        request.Headers.Add("api-key", "caller-key");
        request.Headers.Add("Authorization", "Bearer caller-token");

        (await h.Client.SendAsync(request)).Dispose();

        var received = h.Transport.Requests.ToArray();
        received[0].Headers.Should().Contain("Authorization", "Bearer token-a").And.NotContainKey("api-key");
        received[1].Headers.Should().Contain("api-key", "key-b").And.NotContainKey("Authorization");
        received[2].Headers.Should().Contain("api-key", "caller-key").And.Contain("Authorization", "Bearer caller-token",
            "a backend without a credential of its own receives the caller's headers as they are");
    }

    [Fact]
    public async Task While_a_probe_decides_the_exhausted_answer_says_one_second_not_zero()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var h = EjectedA(backends: RoutingHarness.Backend("a", 1));
        using var gated = new HttpClient(new ResilienceHandler(h.Pipeline) { InnerHandler = new GateHandler(gate.Task, h.Transport) })
        {
            BaseAddress = new Uri("http://placeholder/"),
        };
        h.Transport.Respond("a", HttpStatusCode.OK);
        var probe = gated.GetAsync("/");

        using var exhausted = await h.Client.GetAsync("/");

        exhausted.StatusCode.Should().Be(HttpStatusCode.ServiceUnavailable);
        exhausted.Headers.GetValues("Retry-After").Should().Equal("1");
        exhausted.Headers.GetValues("retry-after-ms").Should().Equal("1002");
        gate.SetResult();
        (await probe).StatusCode.Should().Be(HttpStatusCode.OK);
    }

    [Fact]
    public async Task A_request_that_leaves_a_backend_to_its_probe_spends_none_of_that_backends_budget()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var h = new RoutingHarness(
            o =>
            {
                o.Randomizer = _ => 0;
                o.DefaultCooldown = TimeSpan.Zero;
            },
            RoutingHarness.Backend("a", 1),
            RoutingHarness.Backend("b", 2));
        h.Transport.Respond("a", _ =>
        {
            var answer = new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent("{}") };
            answer.Headers.TryAddWithoutValidation("x-ratelimit-remaining-tokens", "10000");
            answer.Headers.TryAddWithoutValidation("x-ratelimit-reset-tokens", "60s");
            return answer;
        });
        (await h.Client.PostAsync("/", Chat(0))).Dispose();
        h.Transport.Respond("a", HttpStatusCode.InternalServerError);
        for (var i = 0; i < 5; i++)
        {
            (await h.Client.GetAsync("/")).Dispose();
        }

        h.StateOf("a")!.Value.Reason.Should().Be(BackendUnavailableReason.Ejected);
        h.Time.Advance(TimeSpan.FromSeconds(30));
        h.Transport.Respond("a", HttpStatusCode.OK); // no budget headers: the view keeps 10,000 less what was sent to a
        using var gated = new HttpClient(new ResilienceHandler(h.Pipeline) { InnerHandler = new GateHandler(gate.Task, h.Transport) })
        {
            BaseAddress = new Uri("http://placeholder/"),
        };

        var probe = gated.PostAsync("/", Chat(1000)); // about 1,260 tokens, sent to a
        (await h.Client.PostAsync("/", Chat(3000))).Dispose(); // a is probing: this one goes to b and sends a nothing
        gate.SetResult();
        (await probe).Dispose();
        (await h.Client.PostAsync("/", Chat(6000))).Dispose(); // about 7,515 tokens: fits 10,000 - 1,260

        h.Transport.Hosts.TakeLast(3).Should().Equal(["b", "a", "a"], "only what was sent to a is spent from its budget");
    }

    private static StringContent Chat(int maxTokens)
        => new(
            "{\"messages\":[{\"role\":\"user\",\"content\":\"" + new string('x', maxTokens) + "\"}],\"max_tokens\":" +
            maxTokens.ToString(System.Globalization.CultureInfo.InvariantCulture) + "}",
            System.Text.Encoding.UTF8,
            "application/json");

    [Fact]
    public async Task Two_clients_share_a_backend_only_when_name_and_address_match()
    {
        var store = new InMemoryBackendStateStore();
        using var first = new RoutingHarness(o => o.StateStore = store, Named("primary", "http://east/"), Named("backup", "http://backup/", 2));
        using var unrelated = new RoutingHarness(o => o.StateStore = store, Named("primary", "http://west/"), Named("backup", "http://backup/", 2));
        using var same = new RoutingHarness(o => o.StateStore = store, Named("primary", "http://east/"), Named("backup", "http://backup/", 2));
        first.Transport.Respond("east", HttpStatusCode.TooManyRequests, ("Retry-After", "30"));

        (await first.Client.GetAsync("/")).Dispose();
        (await unrelated.Client.GetAsync("/")).Dispose();
        (await same.Client.GetAsync("/")).Dispose();

        first.Transport.Hosts.Should().Equal("east", "backup");
        unrelated.Transport.Hosts.Should().Equal("west");
        same.Transport.Hosts.Should().Equal("backup");
    }

    [Fact]
    public async Task A_deadline_far_beyond_this_pipelines_longest_cooldown_counts_as_ending_then()
    {
        using var h = new RoutingHarness(o => o.Randomizer = _ => 0, RoutingHarness.Backend("a", 1));
        var now = h.Time.GetUtcNow();
        await h.Store.MarkUnavailableAsync(RoutingHarness.Key("a"), new(now.AddDays(365), BackendUnavailableReason.Throttled), now, default);

        using var response = await h.Client.GetAsync("/");

        response.Headers.GetValues("Retry-After").Should().Equal(["300"], "MaxCooldown and MaxEjectionTime are 5 min");
    }

    private static PriorityBackend Named(string name, string address, int priority = 1)
        => new() { Name = name, BaseAddress = new Uri(address), Priority = priority };

    /// <summary>A harness whose backend a was just ejected (5 server errors) and whose ejection has ended.</summary>
    private static RoutingHarness EjectedA(Action<PriorityRoutingStrategyOptions>? configure = null, params PriorityBackend[] backends)
    {
        var h = new RoutingHarness(
            o =>
            {
                o.Randomizer = _ => 0;
                o.DefaultCooldown = TimeSpan.Zero;
                configure?.Invoke(o);
            },
            backends.Length > 0 ? backends : [RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2)]);
        h.Transport.Respond("a", HttpStatusCode.InternalServerError);
        for (var i = 0; i < 5; i++)
        {
            h.Client.GetAsync("/").GetAwaiter().GetResult().Dispose();
        }

        h.StateOf("a")!.Value.Reason.Should().Be(BackendUnavailableReason.Ejected);
        h.Time.Advance(TimeSpan.FromSeconds(30));
        h.Transport.Respond("a", HttpStatusCode.OK);
        return h;
    }

    /// <summary>Holds every request until the gate opens, then hands it to the transport.</summary>
    private sealed class GateHandler(Task gate, HttpMessageHandler transport) : DelegatingHandler(transport)
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            await gate.WaitAsync(cancellationToken);
            return await base.SendAsync(request, cancellationToken);
        }
    }

    private sealed class ThrowingContent : HttpContent
    {
        protected override Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context)
            => throw new IOException("the caller's upload broke");

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }

    private sealed class TrackingContent : StringContent
    {
        public TrackingContent()
            : base("answer")
        {
        }

        public bool Disposed { get; private set; }

        protected override void Dispose(bool disposing)
        {
            Disposed = true;
            base.Dispose(disposing);
        }
    }
}
