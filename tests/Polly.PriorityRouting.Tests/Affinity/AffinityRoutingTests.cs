using System.Net;
using System.Text;
using System.Text.Json;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Affinity;

/// <summary>Hard affinity through the strategy: three equal backends, each creating its own ids.</summary>
public class AffinityRoutingTests
{
    private readonly InMemoryAffinityStore _pins = new(1_000, TimeProvider.System);
    private int _draws;

    [Fact]
    public async Task Twenty_chained_follow_ups_all_land_on_the_backend_that_created_the_first_response()
    {
        using var h = Harness();
        var first = await CreateAsync(h, previous: null);
        var origin = first.Host;

        var previous = first.Id;
        for (var i = 0; i < 20; i++)
        {
            var next = await CreateAsync(h, previous);
            next.Host.Should().Be(origin);
            previous = next.Id;
        }

        h.Transport.Hosts.Should().Equal(Enumerable.Repeat(origin, 21));
        _pins.Count.Should().Be(21, "every response of the chain is pinned");
    }

    [Fact]
    public async Task Requests_without_ids_still_spread_over_the_tier()
    {
        using var h = Harness();

        for (var i = 0; i < 6; i++)
        {
            using var response = await h.Client.PostAsync("/v1/chat/completions", Json("""{"messages":[]}"""));
        }

        h.Transport.Hosts.Should().Equal(["a", "b", "c", "a", "b", "c"]);
        _pins.Count.Should().Be(0);
    }

    [Theory]
    [InlineData("GET", "/openai/v1/responses/{0}")]
    [InlineData("GET", "/openai/responses/{0}/input_items?api-version=2025-04-01-preview")]
    [InlineData("POST", "/v1/responses/{0}/cancel")]
    public async Task Reads_of_a_stored_response_go_to_its_backend(string method, string path)
    {
        using var h = Harness();
        var created = await CreateAsync(h, previous: null);
        _draws = 0;

        for (var i = 0; i < 3; i++)
        {
            using var response = await h.Client.SendAsync(new HttpRequestMessage(new HttpMethod(method), string.Format(System.Globalization.CultureInfo.InvariantCulture, path, created.Id)));
            response.StatusCode.Should().Be(HttpStatusCode.OK);
        }

        h.Transport.Hosts.Should().Equal(Enumerable.Repeat(created.Host, 4));
    }

    [Fact]
    public async Task A_throttled_origin_gives_the_exhausted_answer_with_its_own_retry_after_and_no_other_backend_sees_the_request()
    {
        using var h = Harness();
        var created = await CreateAsync(h, previous: null);
        h.Transport.Respond(created.Host, HttpStatusCode.TooManyRequests, ("Retry-After", "20"));
        await h.Store.MarkUnavailableAsync(
            RoutingHarness.Key(created.Host == "a" ? "b" : "a"),
            new BackendUnavailability(h.Time.GetUtcNow() + TimeSpan.FromSeconds(3), BackendUnavailableReason.Throttled),
            h.Time.GetUtcNow(),
            CancellationToken.None);

        using var first = await h.Client.PostAsync("/v1/responses", Json($$"""{"previous_response_id":"{{created.Id}}"}"""));
        using var second = await h.Client.GetAsync($"/v1/responses/{created.Id}");

        foreach (var response in new[] { first, second })
        {
            response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
            response.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(20), "the origin's own Retry-After, not another backend's 3 s");
            response.Headers.GetValues(PriorityRoutingConstants.RetryAfterMillisecondsHeader).Single().Should().Be("20002");
        }

        h.Transport.Hosts.Should().Equal([created.Host, created.Host], "the follow-up reached the origin once, then waited for it; nobody else");
    }

    [Fact]
    public async Task An_id_held_by_a_backend_that_is_no_longer_configured_gets_a_clear_error_and_reaches_no_backend()
    {
        using var h = Harness();
        _pins.Pin("resp_gone", "old@http://old", TimeSpan.FromDays(1));

        using var response = await h.Client.PostAsync("/v1/responses", Json("""{"previous_response_id":"resp_gone","input":"hi"}"""));

        response.StatusCode.Should().Be(HttpStatusCode.NotFound);
        using var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        error.RootElement.GetProperty("error").GetProperty("code").GetString().Should().Be("affinity_backend_not_configured");
        error.RootElement.GetProperty("error").GetProperty("message").GetString().Should().Be(
            "The stored response 'resp_gone' was created on backend 'old@http://old', which is no longer configured. " +
            "It exists on that backend only, so the request was sent to no other backend.");
        h.Transport.Requests.Should().BeEmpty();
    }

    [Fact]
    public async Task An_unknown_id_is_routed_normally()
    {
        using var h = Harness();

        using var response = await h.Client.GetAsync("/v1/files/file-unknown");

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal(["a"]);
    }

    [Fact]
    public async Task A_deleted_file_is_forgotten_and_a_failed_delete_keeps_it()
    {
        using var h = Harness();
        h.Transport.Respond("b", _ => Answer("""{"object":"file","id":"file-b1"}"""));
        _draws = 1;
        using (await h.Client.PostAsync("/v1/files", new StringContent("x")))
        {
        }

        _pins.TryFind("file-b1", out var holder).Should().BeTrue();
        holder.Should().Be("b@http://b");

        h.Transport.Respond("b", HttpStatusCode.BadRequest);
        using (await h.Client.DeleteAsync("/v1/files/file-b1"))
        {
        }

        _pins.TryFind("file-b1", out _).Should().BeTrue();

        h.Transport.Respond("b", HttpStatusCode.OK);
        using (await h.Client.DeleteAsync("/v1/files/file-b1"))
        {
        }

        _pins.TryFind("file-b1", out _).Should().BeFalse();
        h.Transport.Hosts.Should().Equal(["b", "b", "b"]);
    }

    [Fact]
    public async Task With_affinity_off_follow_ups_are_routed_like_any_request()
    {
        using var h = Harness(o => o.Affinity.Enabled = false);
        var created = await CreateAsync(h, previous: null);

        var next = await CreateAsync(h, created.Id);

        (created.Host, next.Host).Should().Be(("a", "b"));
        _pins.Count.Should().Be(0);
    }

    [Fact]
    public async Task A_store_that_fails_never_fails_the_request()
    {
        using var h = Harness(o => o.Affinity.Store = new FailingStore());

        var created = await CreateAsync(h, previous: null);
        var next = await CreateAsync(h, created.Id);

        (created.Host, next.Host).Should().Be(("a", "b"));
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static HttpResponseMessage Answer(string json) => new(HttpStatusCode.OK) { Content = new StringContent(json, Encoding.UTF8, "application/json") };

    private static async Task<(string Host, string Id)> CreateAsync(RoutingHarness h, string? previous)
    {
        var body = previous is null ? """{"model":"gpt-4o","input":"hi"}""" : $$"""{"model":"gpt-4o","input":"more","previous_response_id":"{{previous}}"}""";
        using var response = await h.Client.PostAsync("/openai/v1/responses", Json(body));
        response.StatusCode.Should().Be(HttpStatusCode.OK);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var id = json.RootElement.GetProperty("id").GetString()!;
        return (id.Split('_')[1].Split('-')[0], id);
    }

    private RoutingHarness Harness(Action<PriorityRoutingStrategyOptions>? configure = null)
    {
        var h = new RoutingHarness(
            o =>
            {
                // Rotates a, b, c, a, … over equal weights; affinity must override it.
                o.Randomizer = bound => _draws++ % bound;
                o.Affinity.Store = _pins;
                configure?.Invoke(o);
            },
            RoutingHarness.Backend("a", 1),
            RoutingHarness.Backend("b", 1),
            RoutingHarness.Backend("c", 1));
        foreach (var host in new[] { "a", "b", "c" })
        {
            var created = 0;
            h.Transport.Respond(host, _ => Answer($$"""{"id":"resp_{{host}}-{{++created}}","object":"response","status":"completed"}"""));
        }

        return h;
    }

    private sealed class FailingStore : IAffinityStore
    {
        public ValueTask<string?> FindAsync(string id, CancellationToken cancellationToken) => throw new InvalidOperationException("down");

        public ValueTask PinAsync(string id, string backend, TimeSpan timeToLive, CancellationToken cancellationToken) => throw new InvalidOperationException("down");

        public ValueTask RemoveAsync(string id, CancellationToken cancellationToken) => throw new InvalidOperationException("down");

        public ValueTask<string?> FindStickyAsync(string key, CancellationToken cancellationToken) => throw new InvalidOperationException("down");

        public ValueTask PinStickyAsync(string key, string backend, TimeSpan timeToLive, CancellationToken cancellationToken) => throw new InvalidOperationException("down");
    }
}
