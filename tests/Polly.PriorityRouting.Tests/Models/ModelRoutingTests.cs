using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Models;

/// <summary>Per-backend model names (<see cref="PriorityBackend.Models"/>) through the whole strategy.</summary>
public class ModelRoutingTests
{
    private const string AzurePath = "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21";

    // Property order, spacing, numbers, escapes and unknown fields that a re-serialiser would change.
    private const string V1Body =
        "{\"messages\":[{\"role\":\"user\",\"content\":\"say \\\"model\\\": x\",\"model\":\"nested\"}],\n" +
        "  \"model\" : \"gpt-4o\",\t\"temperature\":1.0E+0,\"n\":1,\"x_unknown\":{\"model\":\"gpt-4o\"},\"seed\":12345678901234567890,\"s\":\"\\u00e9\"}";

    [Fact]
    public async Task A_path_style_request_carries_each_backends_own_deployment_name_across_a_failover()
    {
        using var h = Harness(Serving("a", 1, ("gpt-4o", "gpt-4o-ptu")), Serving("b", 2, ("gpt-4o", "gpt-4o")));
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "5"));

        using var response = await h.Client.PostAsync(AzurePath, Json("{\"messages\":[]}"));

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Requests.Select(r => r.Uri.AbsoluteUri).Should().Equal(
            "http://a/openai/deployments/gpt-4o-ptu/chat/completions?api-version=2024-10-21",
            "http://b/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21");
        h.Transport.Requests.Select(r => r.Body).Should().Equal("{\"messages\":[]}", "{\"messages\":[]}");
        h.StateOf("a", "gpt-4o-ptu").Should().Be(new BackendUnavailability(h.Time.GetUtcNow().AddSeconds(5), BackendUnavailableReason.Throttled));
        h.StateOf("a").Should().BeNull("a throttle of a mapped model is kept for the backend's deployment, not the whole backend");
    }

    [Fact]
    public async Task A_body_style_request_has_only_its_top_level_model_value_rewritten_and_every_other_byte_kept()
    {
        using var h = Harness(Serving("a", 1, ("gpt-4o", "gpt-4o-ptu")), Serving("b", 2, ("gpt-4o", "gpt-4o")));
        var contentHeaders = new List<(string? Type, long? Length)>();
        h.Transport.Respond("a", request =>
        {
            contentHeaders.Add((request.Content!.Headers.ContentType?.ToString(), request.Content.Headers.ContentLength));
            return new HttpResponseMessage(HttpStatusCode.TooManyRequests);
        });
        h.Transport.Respond("b", request =>
        {
            contentHeaders.Add((request.Content!.Headers.ContentType?.ToString(), request.Content.Headers.ContentLength));
            return new HttpResponseMessage(HttpStatusCode.OK);
        });
        using var content = Json(V1Body);

        using var response = await h.Client.PostAsync("/openai/v1/chat/completions", content);

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        var rewritten = V1Body.Replace("\"model\" : \"gpt-4o\"", "\"model\" : \"gpt-4o-ptu\"", StringComparison.Ordinal);
        h.Transport.Requests.Select(r => (r.Uri.AbsoluteUri, r.Body)).Should().Equal(
            ("http://a/openai/v1/chat/completions", rewritten),
            ("http://b/openai/v1/chat/completions", V1Body));
        contentHeaders.Should().Equal(
            ("application/json; charset=utf-8", Encoding.UTF8.GetByteCount(rewritten)),
            ("application/json; charset=utf-8", Encoding.UTF8.GetByteCount(V1Body)));
        (await content.ReadAsStringAsync()).Should().Be(V1Body, "the caller's content is never modified: an outer retry sends it again");
        h.StateOf("a", "gpt-4o-ptu")!.Value.Reason.Should().Be(BackendUnavailableReason.Throttled);
    }

    [Fact]
    public async Task An_escaped_model_name_is_resolved_and_its_whole_token_replaced()
    {
        using var h = Harness(Serving("a", 1, ("gpt-4o", "gpt-4o-ptu")));

        (await h.Client.PostAsync("/v1/chat/completions", Json("{\"model\":\"gpt\\u002d4o\",\"n\":1}"))).Dispose();

        h.Transport.Requests.Single().Body.Should().Be("{\"model\":\"gpt-4o-ptu\",\"n\":1}");
    }

    [Fact]
    public void Synchronous_send_rewrites_the_body_too()
    {
        using var h = Harness(Serving("a", 1, ("gpt-4o", "gpt-4o-ptu")));
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = Json("{\"model\":\"gpt-4o\"}") };

        using var response = h.Client.Send(request);

        h.Transport.Requests.Single().Body.Should().Be("{\"model\":\"gpt-4o-ptu\"}");
    }

    [Fact]
    public async Task A_model_served_by_some_backends_never_goes_to_the_others_and_the_exhausted_answer_is_computed_over_them()
    {
        using var h = Harness(
            Serving("a", 1, ("gpt-4o", "gpt-4o-ptu")),
            Serving("b", 2, ("gpt-4o", "gpt-4o"), ("o3", "o3")),
            Serving("c", 2, ("o3", "o3-2025-04-16")));
        h.Transport
            .Respond("b", HttpStatusCode.TooManyRequests, ("Retry-After", "7"))
            .Respond("c", HttpStatusCode.TooManyRequests, ("Retry-After", "9"));

        using var first = await h.Client.PostAsync("/v1/chat/completions", Json("{\"model\":\"o3\"}"));
        using var second = await h.Client.PostAsync("/v1/chat/completions", Json("{\"model\":\"o3\"}"));

        h.Transport.Requests.Select(r => (r.Host, r.Body)).Should().Equal(
            ("b", "{\"model\":\"o3\"}"),
            ("c", "{\"model\":\"o3-2025-04-16\"}"));
        foreach (var response in new[] { first, second })
        {
            response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests, "a is in rotation, but it does not serve o3");
            response.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(7));
            response.Headers.GetValues("retry-after-ms").Should().Equal("7002");
        }

        h.StateOf("b", "o3").Should().Be(new BackendUnavailability(h.Time.GetUtcNow().AddSeconds(7), BackendUnavailableReason.Throttled));
        h.StateOf("c", "o3-2025-04-16").Should().Be(new BackendUnavailability(h.Time.GetUtcNow().AddSeconds(9), BackendUnavailableReason.Throttled));

        using var gpt = await h.Client.PostAsync("/v1/chat/completions", Json("{\"model\":\"gpt-4o\"}"));
        h.Transport.Requests.Last().Should().Match<RecordedRequest>(r => r.Host == "a" && r.Body == "{\"model\":\"gpt-4o-ptu\"}");
    }

    [Fact]
    public async Task A_name_no_backend_serves_is_answered_404_naming_it_without_calling_a_backend()
    {
        using var h = Harness(Serving("a", 1, ("gpt-4o", "gpt-4o-ptu")), Serving("b", 2, ("o3", "o3"), ("gpt-4o", "gpt-4o")));

        using var body = await h.Client.PostAsync("/v1/chat/completions", Json("{\"model\":\"gpt-5\"}"));
        using var path = await h.Client.PostAsync("/openai/deployments/gpt-5/chat/completions?api-version=1", Json("{}"));

        foreach (var response in new[] { body, path })
        {
            response.StatusCode.Should().Be(HttpStatusCode.NotFound);
            response.Content.Headers.ContentType!.ToString().Should().Be("application/json; charset=utf-8");
            (await response.Content.ReadAsStringAsync()).Should().Be(
                "{\"error\":{\"message\":\"The model 'gpt-5' is not served by any backend. Served models: 'gpt-4o', 'o3'.\"," +
                "\"type\":\"invalid_request_error\",\"param\":\"model\",\"code\":\"model_not_found\"}}");
            response.Headers.Contains(PriorityRoutingConstants.ExhaustedHeader).Should().BeFalse();
        }

        h.Transport.Requests.Should().BeEmpty();
        h.Store.Count.Should().Be(0);
    }

    [Fact]
    public async Task The_404_shows_a_bounded_and_escaped_name_however_long_or_odd_the_callers()
    {
        using var h = Harness(Serving("a", 1, ("gpt-4o", "gpt-4o-ptu")));
        var name = "\"<x>\"\n" + new string('m', 10_000);

        using var response = await h.Client.PostAsync("/v1/chat/completions", Json("{\"model\":" + System.Text.Json.JsonSerializer.Serialize(name) + "}"));

        var message = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("message").GetString();
        message.Should().Be("The model '" + name[..256] + "…' is not served by any backend. Served models: 'gpt-4o'.");
    }

    [Fact]
    public async Task With_backends_without_a_map_other_names_go_to_those_only_and_unchanged()
    {
        using var h = Harness(Serving("a", 1, ("gpt-4o", "gpt-4o-ptu")), RoutingHarness.Backend("b", 2), RoutingHarness.Backend("c", 2));
        h.Transport.Respond("b", HttpStatusCode.TooManyRequests, ("Retry-After", "3"));

        (await h.Client.PostAsync("/v1/chat/completions", Json("{\"model\":\"mistral-large\"}"))).Dispose();
        (await h.Client.PostAsync("/v1/chat/completions", Json("{\"model\":\"gpt-4o\"}"))).Dispose();

        h.Transport.Requests.Select(r => (r.Host, r.Body)).Should().Equal(
            ("b", "{\"model\":\"mistral-large\"}"),
            ("c", "{\"model\":\"mistral-large\"}"),
            ("a", "{\"model\":\"gpt-4o-ptu\"}"));
        h.StateOf("b").Should().NotBeNull("a backend without a map keeps today's throttle key");
    }

    [Fact]
    public async Task Without_any_map_every_name_passes_through_unchanged()
    {
        using var h = Harness(RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2));

        (await h.Client.PostAsync("/v1/chat/completions", Json("{\"model\":\"anything\"}"))).Dispose();
        (await h.Client.PostAsync("/openai/deployments/anything/chat/completions", Json("{}"))).Dispose();

        h.Transport.Requests.Select(r => (r.Uri.AbsoluteUri, r.Body)).Should().Equal(
            ("http://a/v1/chat/completions", "{\"model\":\"anything\"}"),
            ("http://a/openai/deployments/anything/chat/completions", "{}"));
    }

    [Fact]
    public async Task A_request_that_names_no_model_routes_over_every_backend_unchanged()
    {
        using var h = Harness(Serving("a", 1, ("gpt-4o", "gpt-4o-ptu")), Serving("b", 2, ("o3", "o3")));
        h.Transport.Respond("a", HttpStatusCode.ServiceUnavailable);
        using var form = new MultipartFormDataContent { { new StringContent("gpt-4o"), "model" } };

        (await h.Client.GetAsync("/openai/files?api-version=1")).Dispose();
        (await h.Client.PostAsync("/v1/audio/transcriptions", form)).Dispose();

        h.Transport.Requests.Select(r => r.Uri.AbsoluteUri).Should().Equal(
            "http://a/openai/files?api-version=1",
            "http://b/openai/files?api-version=1",
            "http://b/v1/audio/transcriptions");
    }

    [Fact]
    public async Task A_throttle_of_one_model_leaves_the_backends_other_models_in_rotation()
    {
        using var h = Harness(Serving("a", 1, ("gpt-4o", "gpt-4o-ptu"), ("o3", "o3")), Serving("b", 2, ("gpt-4o", "gpt-4o"), ("o3", "o3")));
        h.Transport.Respond("a", request => request.RequestUri!.AbsolutePath.Contains("gpt-4o-ptu", StringComparison.Ordinal)
            ? new HttpResponseMessage(HttpStatusCode.TooManyRequests) { Headers = { { "Retry-After", "30" } } }
            : new HttpResponseMessage(HttpStatusCode.OK));

        (await h.Client.PostAsync("/openai/deployments/gpt-4o/chat/completions", Json("{}"))).Dispose();
        (await h.Client.PostAsync("/openai/deployments/o3/chat/completions", Json("{}"))).Dispose();
        (await h.Client.PostAsync("/openai/deployments/gpt-4o/chat/completions", Json("{}"))).Dispose();

        h.Transport.Requests.Select(r => r.Uri.AbsolutePath).Should().Equal(
            "/openai/deployments/gpt-4o-ptu/chat/completions",
            "/openai/deployments/gpt-4o/chat/completions",
            "/openai/deployments/o3/chat/completions",
            "/openai/deployments/gpt-4o/chat/completions");
        h.Transport.Hosts.Should().Equal("a", "b", "a", "b");
        h.StateOf("a", "gpt-4o-ptu")!.Value.Until.Should().Be(h.Time.GetUtcNow().AddSeconds(30));
        h.StateOf("a", "o3").Should().BeNull();
    }

    [Fact]
    public async Task Aliases_of_one_deployment_share_its_throttle()
    {
        using var h = Harness(
            Serving("a", 1, ("gpt-4o", "gpt-4o-2024-11-20"), ("gpt-4o-2024-11-20", "gpt-4o-2024-11-20")),
            Serving("b", 2, ("gpt-4o", "gpt-4o"), ("gpt-4o-2024-11-20", "gpt-4o")));
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "30"));

        (await h.Client.PostAsync("/v1/chat/completions", Json("{\"model\":\"gpt-4o\"}"))).Dispose();
        (await h.Client.PostAsync("/v1/chat/completions", Json("{\"model\":\"gpt-4o-2024-11-20\"}"))).Dispose();

        h.Transport.Requests.Select(r => (r.Host, r.Body)).Should().Equal(
            ("a", "{\"model\":\"gpt-4o-2024-11-20\"}"),
            ("b", "{\"model\":\"gpt-4o\"}"),
            ("b", "{\"model\":\"gpt-4o\"}"));
    }

    [Fact]
    public async Task Server_errors_still_take_the_whole_backend_out_for_every_model()
    {
        using var h = Harness(Serving("a", 1, ("gpt-4o", "gpt-4o-ptu"), ("o3", "o3")), Serving("b", 2, ("gpt-4o", "gpt-4o"), ("o3", "o3")));
        h.Transport.Respond("a", HttpStatusCode.InternalServerError);

        (await h.Client.PostAsync("/v1/chat/completions", Json("{\"model\":\"gpt-4o\"}"))).Dispose();
        (await h.Client.PostAsync("/v1/chat/completions", Json("{\"model\":\"o3\"}"))).Dispose();

        h.Transport.Hosts.Should().Equal("a", "b", "b");
        h.StateOf("a")!.Value.Reason.Should().Be(BackendUnavailableReason.ServerError);
    }

    [Fact]
    public async Task A_custom_partition_key_still_applies_to_backends_without_a_map()
    {
        using var h = Harness(
            o => o.ThrottlePartitionKey = request => request.Headers.TryGetValues("x-tenant", out var values) ? values.Single() : null,
            Serving("a", 1, ("gpt-4o", "gpt-4o-ptu")),
            RoutingHarness.Backend("b", 2));
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests).Respond("b", HttpStatusCode.TooManyRequests);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = Json("{\"model\":\"gpt-4o\"}") };
        request.Headers.Add("x-tenant", "t1");

        (await h.Client.SendAsync(request)).Dispose();

        h.StateOf("a", "gpt-4o-ptu").Should().NotBeNull();
        h.StateOf("b", "t1").Should().NotBeNull();
        h.Store.Count.Should().Be(2);
    }

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

    private static RoutingHarness Harness(params PriorityBackend[] backends) => Harness(null, backends);

    private static RoutingHarness Harness(Action<PriorityRoutingStrategyOptions>? configure, params PriorityBackend[] backends)
        => new(o =>
        {
            o.Randomizer = _ => 0;
            configure?.Invoke(o);
        }, backends);
}
