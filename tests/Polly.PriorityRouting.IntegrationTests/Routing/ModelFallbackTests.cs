using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Polly.PriorityRouting.IntegrationTests.Support;

namespace Polly.PriorityRouting.IntegrationTests.Routing;

/// <summary>
/// Model fallbacks and context-window fallbacks through the one-line handler, configured from configuration, over real
/// Kestrel backends: a serves gpt-4o as "gpt-4o-ptu", b serves gpt-4o-mini as "mini-deploy", c serves gpt-4o-128k as
/// "big-deploy" (each backend also says which backend it is in <c>x-backend</c>).
/// </summary>
public sealed class ModelFallbackTests : ThreeBackendsTestBase
{
    private const string ModelHeader = "x-priority-routing-model";

    [Fact]
    public async Task A_throttled_model_is_served_by_its_fallback_in_the_same_call_with_the_rewritten_body_and_the_model_header()
    {
        A.Throttle(retryAfterSeconds: 30);
        using var host = Start(("ModelFallbacks:gpt-4o:0", "gpt-4o-mini"));

        using var response = await host.PostAsync(Chat("gpt-4o"));

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        response.Headers.GetValues("x-backend").Should().Equal("b");
        response.Headers.GetValues(ModelHeader).Should().Equal("gpt-4o-mini");
        A.Received.Single().Body.Should().Be(Chat("gpt-4o-ptu"));
        B.Received.Single().Body.Should().Be(Chat("mini-deploy"));
        C.Hits.Should().Be(0);
    }

    [Fact]
    public async Task No_fallback_is_used_while_the_requested_model_has_an_available_backend_in_a_lower_tier()
    {
        A.Throttle(retryAfterSeconds: 30);
        using var host = Start(
            ("ModelFallbacks:gpt-4o:0", "gpt-4o-mini"),
            ("Backends:2:Models:gpt-4o", "gpt-4o-payg"));

        using var response = await host.PostAsync(Chat("gpt-4o"));

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        response.Headers.GetValues("x-backend").Should().Equal("c");
        response.Headers.GetValues(ModelHeader).Should().Equal("gpt-4o");
        C.Received.Single().Body.Should().Be(Chat("gpt-4o-payg"));
        B.Hits.Should().Be(0);
    }

    [Fact]
    public async Task A_chain_of_two_fallbacks_is_walked_in_order()
    {
        A.Throttle(retryAfterSeconds: 30);
        B.Behave((context, _) => FakeBackend.Status(context, 503));
        using var host = Start(("ModelFallbacks:gpt-4o:0", "gpt-4o-mini"), ("ModelFallbacks:gpt-4o:1", "gpt-4o-128k"));

        using var response = await host.PostAsync(Chat("gpt-4o"));

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        response.Headers.GetValues(ModelHeader).Should().Equal("gpt-4o-128k");
        (A.Hits, B.Hits).Should().Be((1, 1));
        B.Received.Single().Body.Should().Be(Chat("mini-deploy"));
        C.Received.Single().Body.Should().Be(Chat("big-deploy"));
    }

    [Fact]
    public async Task A_whole_chain_exhausted_answers_429_with_the_soonest_Retry_After_of_the_chain()
    {
        A.Throttle(retryAfterSeconds: 30);
        B.Throttle(retryAfterSeconds: 7);
        C.Throttle(retryAfterSeconds: 20);
        using var host = Start(("ModelFallbacks:gpt-4o:0", "gpt-4o-mini"), ("ModelFallbacks:gpt-4o:1", "gpt-4o-128k"));

        using var response = await host.PostAsync(Chat("gpt-4o"));

        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(7));
        (A.Hits, B.Hits, C.Hits).Should().Be((1, 1, 1));
        response.Headers.Contains(ModelHeader).Should().BeFalse("no model served the exhausted answer");
    }

    [Fact]
    public async Task NoModelFallback_keeps_the_request_on_its_model()
    {
        A.Throttle(retryAfterSeconds: 30);
        using var host = Start(("ModelFallbacks:gpt-4o:0", "gpt-4o-mini"));
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = Json(Chat("gpt-4o")) };
        request.Options.Set(PriorityRoutingRequestOptions.Hints, new PriorityRoutingHints { NoModelFallback = true });

        using var response = await host.Client.SendAsync(request);

        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(30));
        (A.Hits, B.Hits, C.Hits).Should().Be((1, 0, 0));
    }

    [Fact]
    public async Task An_Azure_deployment_path_falls_back_with_the_fallbacks_deployment_in_the_path()
    {
        A.Throttle(retryAfterSeconds: 30);
        using var host = Start(("ModelFallbacks:gpt-4o:0", "gpt-4o-mini"));

        using var response = await host.Client.PostAsync("/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", Json("{\"messages\":[]}"));

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        response.Headers.GetValues(ModelHeader).Should().Equal("gpt-4o-mini");
        (A.Received.Single().Path, B.Received.Single().Path).Should().Be(
            ("/openai/deployments/gpt-4o-ptu/chat/completions", "/openai/deployments/mini-deploy/chat/completions"));
        B.Received.Single().Query.Should().Be("?api-version=2024-10-21");
        B.Received.Single().Body.Should().Be("{\"messages\":[]}");
    }

    [Fact]
    public async Task A_streamed_answer_from_a_fallback_reaches_the_caller_event_by_event()
    {
        A.Throttle(retryAfterSeconds: 30);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        B.Behave(async (context, _) =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync("data: 1\n\n");
            await context.Response.Body.FlushAsync();
            await release.Task.WaitAsync(TimeSpan.FromSeconds(30));
            await context.Response.WriteAsync("data: 2\n\ndata: [DONE]\n\n");
        });
        using var host = Start(("ModelFallbacks:gpt-4o:0", "gpt-4o-mini"));
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = Json("{\"model\":\"gpt-4o\",\"stream\":true}") };

        using var response = await host.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);

        response.Headers.GetValues(ModelHeader).Should().Equal("gpt-4o-mini");
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        (await reader.ReadLineAsync()).Should().Be("data: 1", "the first event arrives before the backend finishes");
        release.SetResult();
        (await reader.ReadToEndAsync()).Should().Be("\ndata: 2\n\ndata: [DONE]\n\n");
        B.Received.Single().Body.Should().Be("{\"model\":\"mini-deploy\",\"stream\":true}");
    }

    [Fact]
    public async Task A_context_length_exceeded_answer_moves_to_the_larger_model_without_marking_the_backend()
    {
        A.Behave((context, _) => ContextLengthExceeded(context));
        var marked = new ConcurrentQueue<string>();
        using var host = Start(marked, ("ContextWindowFallbacks:gpt-4o:0", "gpt-4o-128k"));

        using var first = await host.PostAsync(Chat("gpt-4o"));
        A.Behave(FakeBackend.Ok);
        using var second = await host.PostAsync(Chat("gpt-4o"));

        first.StatusCode.Should().Be(HttpStatusCode.OK);
        first.Headers.GetValues("x-backend").Should().Equal("c");
        first.Headers.GetValues(ModelHeader).Should().Equal("gpt-4o-128k");
        C.Received.Single().Body.Should().Be(Chat("big-deploy"));
        second.Headers.GetValues("x-backend").Single().Should().Be("a", "the backend that said the prompt does not fit stays in rotation");
        second.Headers.GetValues(ModelHeader).Should().Equal("gpt-4o");
        marked.Should().BeEmpty();
        B.Hits.Should().Be(0);
    }

    [Fact]
    public async Task Without_a_context_window_fallback_the_context_length_400_goes_back_unchanged()
    {
        A.Behave((context, _) => ContextLengthExceeded(context));
        using var host = Start(("ModelFallbacks:gpt-4o:0", "gpt-4o-mini"));

        using var response = await host.PostAsync(Chat("gpt-4o"));

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await response.Content.ReadAsStringAsync()).Should().Be(ContextLengthExceededBody);
        response.Content.Headers.ContentType!.MediaType.Should().Be("application/json");
        (A.Hits, B.Hits, C.Hits).Should().Be((1, 0, 0));
    }

    [Theory]
    [InlineData(100)]
    [InlineData(40 * 1024)]
    public async Task Another_400_of_a_model_with_a_context_window_fallback_goes_back_with_its_body_intact(int size)
    {
        var body = "{\"error\":{\"code\":\"invalid_value\",\"message\":\"" + new string('x', size) + "\"}}";
        A.Behave((context, _) =>
        {
            context.Response.StatusCode = 400;
            context.Response.ContentType = "application/json";
            return context.Response.WriteAsync(body);
        });
        using var host = Start(("ContextWindowFallbacks:gpt-4o:0", "gpt-4o-128k"));

        using var response = await host.PostAsync(Chat("gpt-4o"));

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await response.Content.ReadAsStringAsync()).Should().Be(body);
        response.Content.Headers.ContentType!.MediaType.Should().Be("application/json");
        C.Hits.Should().Be(0);
    }

    private const string ContextLengthExceededBody =
        "{\"error\":{\"message\":\"This model's maximum context length is 8192 tokens.\",\"type\":\"invalid_request_error\",\"param\":\"messages\",\"code\":\"context_length_exceeded\"}}";

    private static Task ContextLengthExceeded(HttpContext context)
    {
        context.Response.StatusCode = 400;
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(ContextLengthExceededBody);
    }

    private static string Chat(string model) => "{\"model\":\"" + model + "\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private Host Start(params (string Key, string Value)[] settings) => Start(new ConcurrentQueue<string>(), settings);

    /// <summary>The one-line handler bound from configuration: a, b, c as described on the class, plus <paramref name="settings"/> under Routing.</summary>
    private Host Start(ConcurrentQueue<string> marked, params (string Key, string Value)[] settings)
    {
        var values = new Dictionary<string, string?>
        {
            ["PriorityRouting:Routing:Backends:0:Name"] = "a",
            ["PriorityRouting:Routing:Backends:0:BaseAddress"] = A.Address.ToString(),
            ["PriorityRouting:Routing:Backends:0:Models:gpt-4o"] = "gpt-4o-ptu",
            ["PriorityRouting:Routing:Backends:1:Name"] = "b",
            ["PriorityRouting:Routing:Backends:1:BaseAddress"] = B.Address.ToString(),
            ["PriorityRouting:Routing:Backends:1:Models:gpt-4o-mini"] = "mini-deploy",
            ["PriorityRouting:Routing:Backends:2:Name"] = "c",
            ["PriorityRouting:Routing:Backends:2:BaseAddress"] = C.Address.ToString(),
            ["PriorityRouting:Routing:Backends:2:Priority"] = "2",
            ["PriorityRouting:Routing:Backends:2:Models:gpt-4o-128k"] = "big-deploy",
        };
        foreach (var (key, value) in settings)
        {
            values["PriorityRouting:Routing:" + key] = value;
        }

        var configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
        var services = new ServiceCollection();
        services.AddSingleton<IBackendStateStore>(new InMemoryBackendStateStore());
        services.AddHttpClient("aoai", c => c.BaseAddress = new Uri("http://placeholder/"))
            .AddPriorityRoutingHandler(configuration.GetSection("PriorityRouting"))
            .Configure(o =>
            {
                // The exhausted answer as routing gave it, not retried by the outer retry.
                o.Retry.ShouldHandle = static _ => new ValueTask<bool>(false);
                o.Routing.OnBackendUnavailable = args =>
                {
                    marked.Enqueue(args.BackendName);
                    return default;
                };
            });
        var provider = services.BuildServiceProvider();
        return new Host(provider, provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai"));
    }

    private sealed class Host(ServiceProvider provider, HttpClient client) : IDisposable
    {
        public HttpClient Client { get; } = client;

        public Task<HttpResponseMessage> PostAsync(string body) => Client.PostAsync("/v1/chat/completions", Json(body));

        public void Dispose()
        {
            Client.Dispose();
            provider.Dispose();
        }
    }
}
