using System.Net;
using System.Text;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Affinity;

/// <summary>Soft affinity over three equal backends a, b, c whose weighted choice rotates a, b, c, a, …</summary>
public class SoftAffinityTests
{
    private readonly InMemoryAffinityStore _pins = new(1_000, TimeProvider.System);
    private int _draws;

    [Fact]
    public async Task A_key_in_the_request_options_keeps_its_requests_on_one_backend()
    {
        using var h = Harness();

        for (var i = 0; i < 5; i++)
        {
            using var response = await h.Client.SendAsync(Chat(key: "session-1"));
        }

        using (await h.Client.SendAsync(Chat(key: "session-2")))
        {
        }

        // The sixth request has another key: the rotation (which only a weighted pick advances, not a kept key) gives it b.
        h.Transport.Hosts.Should().Equal(["a", "a", "a", "a", "a", "b"]);
    }

    [Theory]
    [InlineData("""{"messages":[],"prompt_cache_key":"pck-1","user":"u-1"}""")]
    [InlineData("""{"user":"u-1","messages":[]}""")]
    public async Task The_body_s_prompt_cache_key_or_user_keeps_a_chat_on_one_backend(string body)
    {
        using var h = Harness();

        for (var i = 0; i < 4; i++)
        {
            using var response = await h.Client.SendAsync(Chat(body: body));
        }

        h.Transport.Hosts.Should().Equal(["a", "a", "a", "a"]);
    }

    [Fact]
    public async Task Without_a_key_requests_spread()
    {
        using var h = Harness();

        for (var i = 0; i < 4; i++)
        {
            using var response = await h.Client.SendAsync(Chat(body: """{"messages":[]}"""));
        }

        h.Transport.Hosts.Should().Equal(["a", "b", "c", "a"]);
        _pins.Count.Should().Be(0);
    }

    [Fact]
    public async Task A_key_whose_backend_is_throttled_is_routed_normally_and_moves_to_the_backend_that_answered()
    {
        using var h = Harness();
        using (await h.Client.SendAsync(Chat(key: "s")))
        {
        }

        await h.Store.MarkUnavailableAsync(
            RoutingHarness.Key("a"),
            new BackendUnavailability(h.Time.GetUtcNow() + TimeSpan.FromSeconds(30), BackendUnavailableReason.Throttled),
            h.Time.GetUtcNow(),
            CancellationToken.None);
        for (var i = 0; i < 3; i++)
        {
            using var response = await h.Client.SendAsync(Chat(key: "s"));
            response.StatusCode.Should().Be(HttpStatusCode.OK);
        }

        // With a out, the rotation's second draw over b and c picks c; the key then stays there.
        h.Transport.Hosts.Should().Equal(["a", "c", "c", "c"]);
        (await _pins.FindStickyAsync("s", CancellationToken.None)).Should().Be("c@http://c");
    }

    [Fact]
    public async Task A_key_whose_backend_answers_429_fails_over_within_the_call_and_moves()
    {
        using var h = Harness();
        using (await h.Client.SendAsync(Chat(key: "s")))
        {
        }

        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "30"));
        using (var response = await h.Client.SendAsync(Chat(key: "s")))
        {
            response.StatusCode.Should().Be(HttpStatusCode.OK);
        }

        using (await h.Client.SendAsync(Chat(key: "s")))
        {
        }

        // After a's 429 the rotation's second draw over b and c picks c; the key then stays there.
        h.Transport.Hosts.Should().Equal(["a", "a", "c", "c"]);
    }

    [Fact]
    public async Task Every_backend_failing_gives_the_exhausted_answer_over_all_of_them()
    {
        using var h = Harness();
        using (await h.Client.SendAsync(Chat(key: "s")))
        {
        }

        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "30"));
        h.Transport.Respond("b", HttpStatusCode.TooManyRequests, ("Retry-After", "20"));
        h.Transport.Respond("c", HttpStatusCode.TooManyRequests, ("Retry-After", "10"));

        using var response = await h.Client.SendAsync(Chat(key: "s"));

        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(10));
        h.Transport.Hosts.Should().Equal(["a", "a", "c", "b"]);
    }

    [Fact]
    public async Task Callers_sending_many_distinct_users_never_evict_the_pins_of_stored_responses()
    {
        // A store nearly full of stored-response pins: the users a caller chooses must not push any of them out.
        var pins = new InMemoryAffinityStore(100, TimeProvider.System);
        for (var i = 0; i < 95; i++)
        {
            pins.Pin($"resp_{i}", "b@http://b", TimeSpan.FromDays(30) + TimeSpan.FromSeconds(i));
        }

        using var h = Harness(pins);
        for (var i = 0; i < 200; i++)
        {
            using var response = await h.Client.SendAsync(Chat(body: $$"""{"messages":[],"user":"user-{{i}}"}"""));
        }

        Enumerable.Range(0, 95).Where(i => !pins.TryFind($"resp_{i}", out _)).Should().BeEmpty("no stored response lost its pin");
        using var followUp = await h.Client.PostAsync(
            "/v1/responses", new StringContent("""{"previous_response_id":"resp_0","input":"more"}""", Encoding.UTF8, "application/json"));
        h.Transport.Hosts[^1].Should().Be("b");
    }

    private static HttpRequestMessage Chat(string? key = null, string? body = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21")
        {
            Content = new StringContent(body ?? """{"messages":[]}""", Encoding.UTF8, "application/json"),
        };
        if (key is not null)
        {
            request.Options.Set(PriorityRoutingRequestOptions.Hints, new PriorityRoutingHints { AffinityKey = key });
        }

        return request;
    }

    private RoutingHarness Harness(InMemoryAffinityStore? pins = null) => new(
        o =>
        {
            o.Randomizer = bound => _draws++ % bound;
            o.Affinity.Store = pins ?? _pins;
        },
        RoutingHarness.Backend("a", 1),
        RoutingHarness.Backend("b", 1),
        RoutingHarness.Backend("c", 1));
}
