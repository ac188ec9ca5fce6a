using System.Diagnostics;
using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Http.Resilience;
using Polly.PriorityRouting.IntegrationTests.Support;

namespace Polly.PriorityRouting.IntegrationTests.Routing;

public sealed class FailoverTests : ThreeBackendsTestBase
{
    [Fact]
    public async Task A_429_is_absorbed_by_the_next_backend_and_remembered()
    {
        A.Throttle(retryAfterSeconds: 30);
        using var host = new ClientHost(ClientHost.Route((A, 1), (B, 2)));

        using var first = await host.Client.GetAsync("/v1/models");
        using var second = await host.Client.GetAsync("/v1/models");

        first.StatusCode.Should().Be(HttpStatusCode.OK);
        first.Headers.GetValues("x-backend").Should().Equal("b");
        second.Headers.GetValues("x-backend").Should().Equal("b");
        A.Hits.Should().Be(1);
        B.Hits.Should().Be(2);
    }

    [Fact]
    public async Task A_503_fails_over()
    {
        A.Behave((context, _) => FakeBackend.Status(context, 503));
        using var host = new ClientHost(ClientHost.Route((A, 1), (B, 2)));

        using var response = await host.Client.GetAsync("/");

        response.Headers.GetValues("x-backend").Should().Equal("b");
        host.Options.StateStore!.TryGetUnavailability(host.Options.Backends[0].GetStateKey(), out var state).Should().BeTrue();
        state.Reason.Should().Be(BackendUnavailableReason.ServerError);
    }

    [Fact]
    public async Task A_refused_connection_fails_over()
    {
        var options = ClientHost.Route((B, 2));
        options.Backends.Insert(0, new PriorityBackend { Name = "refused", BaseAddress = FakeBackend.RefusedAddress(), Priority = 1 });
        using var host = new ClientHost(options);

        using var response = await host.Client.GetAsync("/");

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        response.Headers.GetValues("x-backend").Should().Equal("b");
        options.StateStore!.TryGetUnavailability(options.Backends[0].GetStateKey(), out var state).Should().BeTrue();
        state.Reason.Should().Be(BackendUnavailableReason.TransportError);
    }

    [Fact]
    public async Task An_attempt_timeout_fails_over()
    {
        A.Behave(async (context, _) => await Task.Delay(TimeSpan.FromSeconds(10), context.RequestAborted));
        using var host = new ClientHost(
            ClientHost.Route((A, 1), (B, 2)),
            inner: b => b.AddTimeout(TimeSpan.FromMilliseconds(300)));
        var stopwatch = Stopwatch.StartNew();

        using var response = await host.Client.GetAsync("/");

        response.Headers.GetValues("x-backend").Should().Equal("b");
        stopwatch.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(5));
        host.Options.StateStore!.TryGetUnavailability(host.Options.Backends[0].GetStateKey(), out var state).Should().BeTrue();
        state.Reason.Should().Be(BackendUnavailableReason.Timeout);
    }

    [Theory]
    [InlineData(400)]
    [InlineData(401)]
    [InlineData(404)]
    public async Task Other_client_errors_reach_the_caller_unchanged(int status)
    {
        A.Behave((context, _) => FakeBackend.Status(context, status, ("x-ms-error-code", "InvalidRequest")));
        using var host = new ClientHost(ClientHost.Route((A, 1), (B, 2)));

        using var response = await host.Client.GetAsync("/");

        ((int)response.StatusCode).Should().Be(status);
        response.Headers.GetValues("x-ms-error-code").Should().Equal("InvalidRequest");
        (await response.Content.ReadAsStringAsync()).Should().Be("{\"error\":{\"code\":\"" + status + "\",\"message\":\"from backend\"}}");
        B.Hits.Should().Be(0);
    }

    [Fact]
    public async Task Path_and_query_are_preserved_and_the_base_path_applied_once_across_three_attempts()
    {
        A.Throttle(30);
        B.Throttle(30);
        var options = new PriorityRoutingStrategyOptions
        {
            Backends =
            [
                new() { Name = "a", BaseAddress = new Uri(A.Address, "team-a/"), Priority = 1 },
                new() { Name = "b", BaseAddress = new Uri(B.Address, "ai/v2"), Priority = 2 },
                new() { Name = "c", BaseAddress = new Uri(C.Address, "apim/x/?subscription=s1"), Priority = 3 },
            ],
        };
        using var host = new ClientHost(options);

        using var response = await host.Client.GetAsync("openai/deployments/gpt-4o/chat/completions?api-version=2024-06-01&q=a%20b");

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        A.Received.Single().Path.Should().Be("/team-a/openai/deployments/gpt-4o/chat/completions");
        B.Received.Single().Path.Should().Be("/ai/v2/openai/deployments/gpt-4o/chat/completions");
        C.Received.Single().Path.Should().Be("/apim/x/openai/deployments/gpt-4o/chat/completions");
        A.Received.Single().Query.Should().Be("?api-version=2024-06-01&q=a%20b");
        B.Received.Single().Query.Should().Be("?api-version=2024-06-01&q=a%20b");
        C.Received.Single().Query.Should().Be("?subscription=s1&api-version=2024-06-01&q=a%20b");
        C.Received.Single().Headers["Host"].Should().Be(C.Address.Authority);
    }

    [Fact]
    public async Task Each_backend_receives_its_own_api_key_and_no_other()
    {
        A.Throttle(30);
        B.Throttle(30);
        var options = ClientHost.Route((A, 1), (B, 2), (C, 3));
        options.Backends[0].Headers["api-key"] = "key-a";
        options.Backends[1].Headers["api-key"] = "key-b";
        options.Backends[1].Headers["Authorization"] = "Bearer token-b";
        using var host = new ClientHost(options);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/x");
        request.Headers.Add("x-ms-client-request-id", "req-1");

        using var response = await host.Client.SendAsync(request);

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        A.Received.Single().Headers["api-key"].Should().Be("key-a");
        A.Received.Single().Headers.Should().NotContainKey("Authorization");
        B.Received.Single().Headers["api-key"].Should().Be("key-b");
        B.Received.Single().Headers["Authorization"].Should().Be("Bearer token-b");
        C.Received.Single().Headers.Should().NotContainKey("api-key").And.NotContainKey("Authorization");
        new[] { A, B, C }.Should().OnlyContain(b => b.Received.Single().Headers["x-ms-client-request-id"] == "req-1");
        request.Headers.Contains("api-key").Should().BeFalse("the caller's request is never modified");
    }

    public static TheoryData<string> ContentKinds => ["string", "json", "stream"];

    [Theory]
    [MemberData(nameof(ContentKinds))]
    public async Task Post_bodies_are_identical_on_the_second_backend(string kind)
    {
        A.Throttle(30);
        using var host = new ClientHost(ClientHost.Route((A, 1), (B, 2)));
        const string Json = "{\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],\"max_tokens\":5}";
        HttpContent content = kind switch
        {
            "string" => new StringContent(Json, System.Text.Encoding.UTF8, "application/json"),
            "json" => System.Net.Http.Json.JsonContent.Create(new { messages = new[] { new { role = "user", content = "hello" } }, max_tokens = 5 }),
            _ => new StreamContent(new NonSeekableStream(System.Text.Encoding.UTF8.GetBytes(Json))),
        };

        using var response = await host.Client.PostAsync("/chat", content);

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        A.Received.Single().Body.Should().Be(Json);
        B.Received.Single().Body.Should().Be(Json);
        B.Received.Single().Method.Should().Be("POST");
    }

    [Fact]
    public async Task Streamed_responses_reach_the_caller_before_the_backend_finishes()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var finished = false;
        A.Throttle(30);
        B.Behave(async (context, _) =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync("data: {\"delta\":\"first\"}\n\n");
            await context.Response.Body.FlushAsync();
            await release.Task.WaitAsync(TimeSpan.FromSeconds(10));
            await context.Response.WriteAsync("data: [DONE]\n\n");
            finished = true;
        });
        using var host = new ClientHost(ClientHost.Route((A, 1), (B, 2)));

        using var response = await host.Client.SendAsync(
            new HttpRequestMessage(HttpMethod.Post, "/chat") { Content = new StringContent("{\"stream\":true}") },
            HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var firstEvent = await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(5));

        firstEvent.Should().Be("data: {\"delta\":\"first\"}");
        finished.Should().BeFalse();
        release.SetResult();
        (await reader.ReadToEndAsync()).Should().Be("\ndata: [DONE]\n\n");
    }

    [Fact]
    public async Task Repeated_429s_with_one_connection_per_server_do_not_hang()
    {
        // If a discarded 429 were not disposed its connection would never return to the pool, and the next request to
        // the same backend would wait forever for MaxConnectionsPerServer = 1.
        A.Behave((context, _) => FakeBackend.Status(context, 429, ("Retry-After", "0")));
        using var host = new ClientHost(
            ClientHost.Route((A, 1), (B, 2)),
            primaryHandler: () => new SocketsHttpHandler { MaxConnectionsPerServer = 1 });
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));

        for (var i = 0; i < 25; i++)
        {
            using var response = await host.Client.GetAsync("/", deadline.Token);
            response.Headers.GetValues("x-backend").Should().Equal("b");
        }

        A.Hits.Should().Be(25);
        B.Hits.Should().Be(25);
    }

    [Fact]
    public async Task Parallel_requests_over_flapping_backends_all_succeed()
    {
        // Each backend throttles in turn for a short while; an outer retry honours the exhausted answer.
        static Func<HttpContext, int, Task> Flapping(int seed)
        {
            var random = new Random(seed);
            return (context, _) =>
            {
                bool throttle;
                lock (random)
                {
                    throttle = random.NextDouble() < 0.4;
                }

                return throttle
                    ? FakeBackend.Status(context, 429, ("retry-after-ms", "20"), ("Retry-After", "1"))
                    : FakeBackend.Ok(context, 0);
            };
        }

        A.Behave(Flapping(1));
        B.Behave(Flapping(2));
        C.Behave(Flapping(3));
        var options = ClientHost.Route((A, 1), (B, 1), (C, 2));
        using var host = new ClientHost(
            options,
            outer: b => b.AddRetry(new HttpRetryStrategyOptions { ShouldRetryAfterHeader = true, MaxRetryAttempts = 10, Delay = TimeSpan.FromMilliseconds(50) }));

        var responses = await Task.WhenAll(Enumerable.Range(0, 200).Select(async i =>
        {
            using var response = await host.Client.GetAsync($"/item/{i}");
            return (response.StatusCode, await response.Content.ReadAsStringAsync());
        }));

        responses.Should().OnlyContain(r => r.StatusCode == HttpStatusCode.OK && r.Item2 == "ok");
        (A.Hits + B.Hits + C.Hits).Should().BeGreaterThan(200, "some attempts were throttled and failed over");
    }

    [Fact]
    public async Task Everything_throttled_answers_once_with_the_soonest_recovery()
    {
        A.Throttle(30);
        B.Behave((context, _) => FakeBackend.Status(context, 429, ("retry-after-ms", "12500")));
        using var host = new ClientHost(ClientHost.Route((A, 1), (B, 2)));

        using var response = await host.Client.GetAsync("/");

        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.GetValues("Retry-After").Should().Equal("13");
        response.Headers.GetValues("retry-after-ms").Should().ContainSingle().Which.Should().MatchRegex("^12[0-9]{3}$");
        (await response.Content.ReadAsStringAsync()).Should().StartWith("{\"error\":{\"message\":\"All backends are throttled.");
        A.Hits.Should().Be(1);
        B.Hits.Should().Be(1);
    }

    [Fact]
    public async Task An_outer_retry_waits_for_the_exhausted_retry_after_and_then_succeeds()
    {
        A.Behave((context, hit) => hit == 1 ? FakeBackend.Status(context, 429, ("Retry-After", "1")) : FakeBackend.Ok(context, hit));
        B.Behave((context, hit) => hit == 1 ? FakeBackend.Status(context, 429, ("Retry-After", "1")) : FakeBackend.Ok(context, hit));
        using var host = new ClientHost(
            ClientHost.Route((A, 1), (B, 2)),
            outer: b => b.AddRetry(new HttpRetryStrategyOptions { ShouldRetryAfterHeader = true, MaxRetryAttempts = 3 }));
        var stopwatch = Stopwatch.StartNew();

        using var response = await host.Client.GetAsync("/");

        stopwatch.Stop();
        response.StatusCode.Should().Be(HttpStatusCode.OK);
        response.Headers.GetValues("x-backend").Should().Equal("a");
        stopwatch.Elapsed.Should().BeGreaterThanOrEqualTo(TimeSpan.FromSeconds(0.9)).And.BeLessThan(TimeSpan.FromSeconds(5));
        A.Hits.Should().Be(2);
        B.Hits.Should().Be(1);
    }

    [Fact]
    public void Synchronous_send_fails_over()
    {
        A.Throttle(30);
        using var host = new ClientHost(ClientHost.Route((A, 1), (B, 2)));

        using var response = host.Client.Send(new HttpRequestMessage(HttpMethod.Post, "/sync") { Content = new StringContent("payload") });

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        response.Headers.GetValues("x-backend").Should().Equal("b");
        B.Received.Single().Body.Should().Be("payload");
    }

    [Fact]
    public async Task The_snippet_from_the_issue_works_as_written()
    {
        A.Throttle(30);
        var options = ClientHost.Route((A, 1), (B, 2));
        var services = new ServiceCollection();
        services.AddHttpClient("aoai", c => c.BaseAddress = new Uri("http://placeholder/"))
            .AddResilienceHandler("aoai", b => b
                .AddRetry(new HttpRetryStrategyOptions { ShouldRetryAfterHeader = true })
                .AddPriorityRouting(options)
                .AddTimeout(TimeSpan.FromSeconds(30)));
        using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");

        using var response = await client.GetAsync("/openai/models");

        response.Headers.GetValues("x-backend").Should().Equal("b");
        InMemoryBackendStateStore.Shared.Reset(options.Backends[0].GetStateKey());
    }

    [Fact]
    public async Task A_single_backend_with_an_outer_retry_replays_a_non_seekable_upload()
    {
        A.Behave((context, hit) => hit == 1 ? FakeBackend.Status(context, 429, ("Retry-After", "0")) : FakeBackend.Ok(context, hit));
        using var host = new ClientHost(
            ClientHost.Route((A, 1)),
            outer: b => b.AddRetry(new HttpRetryStrategyOptions { ShouldRetryAfterHeader = true, MaxRetryAttempts = 2, Delay = TimeSpan.Zero }));

        using var response = await host.Client.PostAsync("/upload", new StreamContent(new NonSeekableStream("payload"u8.ToArray())));

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        A.Received.Select(r => r.Body).Should().Equal("payload", "payload");
    }

    [Fact]
    public async Task A_callers_broken_upload_surfaces_as_the_callers_error_and_never_marks_the_backend()
    {
        using var host = new ClientHost(ClientHost.Route((A, 1)));

        var act = () => host.Client.PostAsync("/upload", new StreamContent(new BrokenStream()));

        (await act.Should().ThrowAsync<HttpRequestException>()).WithInnerException<IOException>().WithMessage("the upload broke");
        A.Hits.Should().Be(0);
        host.Options.StateStore!.TryGetUnavailability(host.Options.Backends[0].GetStateKey(), out _).Should().BeFalse();
    }

    [Fact]
    public async Task A_predicate_that_throws_gives_the_connection_back()
    {
        // With one connection per server, an answer nobody disposes would starve every later request to A.
        var options = ClientHost.Route((A, 1));
        options.ShouldHandle = _ => throw new InvalidOperationException("predicate broke");
        using var host = new ClientHost(options, primaryHandler: () => new SocketsHttpHandler { MaxConnectionsPerServer = 1 });
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));

        for (var i = 0; i < 3; i++)
        {
            var act = () => host.Client.GetAsync("/", deadline.Token);
            await act.Should().ThrowAsync<InvalidOperationException>().WithMessage("predicate broke");
        }

        A.Hits.Should().Be(3);
    }

    private sealed class BrokenStream : MemoryStream
    {
        public override bool CanSeek => false;

        public override int Read(byte[] buffer, int offset, int count) => throw new IOException("the upload broke");

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
            => throw new IOException("the upload broke");

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
            => throw new IOException("the upload broke");
    }

    private sealed class NonSeekableStream(byte[] data) : MemoryStream(data)
    {
        public override bool CanSeek => false;
    }
}
