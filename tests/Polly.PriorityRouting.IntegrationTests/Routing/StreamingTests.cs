using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Polly.PriorityRouting.IntegrationTests.Support;

namespace Polly.PriorityRouting.IntegrationTests.Routing;

/// <summary>
/// Streams over real Kestrel backends through the one-line handler: first-byte failover, slow streams left alone,
/// broken streams counted, empty bodies never waited for, latency-aware choice.
/// </summary>
/// <remarks>
/// Bounds are generous for a loaded 2-core machine; each test waits for conditions, never for luck.
/// </remarks>
public sealed class StreamingTests : ThreeBackendsTestBase
{
    private const string Events = "data: {\"delta\":\"1\"}\n\ndata: {\"delta\":\"2\"}\n\ndata: {\"delta\":\"3\"}\n\n";

    [Fact]
    public async Task A_backend_that_stalls_before_the_first_byte_fails_over_to_the_healthy_one_in_the_same_call()
    {
        A.Behave(async (context, _) =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.Body.FlushAsync();
            await Task.Delay(TimeSpan.FromSeconds(5), context.RequestAborted);
            await context.Response.WriteAsync(Events);
        });
        B.Behave(WriteEvents);
        var marked = new ConcurrentQueue<(string Backend, BackendUnavailableReason Reason)>();
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["PriorityRouting:Routing:FirstByteTimeout"] = "00:00:00.500",
            ["PriorityRouting:Routing:Backends:0:Name"] = "a",
            ["PriorityRouting:Routing:Backends:0:BaseAddress"] = A.Address.ToString(),
            ["PriorityRouting:Routing:Backends:1:Name"] = "b",
            ["PriorityRouting:Routing:Backends:1:BaseAddress"] = B.Address.ToString(),
            ["PriorityRouting:Routing:Backends:1:Priority"] = "2",
        }).Build();
        var services = new ServiceCollection();
        services.AddSingleton<IBackendStateStore>(new InMemoryBackendStateStore());
        services.AddHttpClient("aoai")
            .AddPriorityRoutingHandler(configuration.GetSection("PriorityRouting"))
            .Configure(o => o.Routing.OnBackendUnavailable = args =>
            {
                marked.Enqueue((args.BackendName, args.Reason));
                return default;
            });
        using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");

        var elapsed = Stopwatch.StartNew();
        using var response = await client.SendAsync(
            new HttpRequestMessage(HttpMethod.Post, "http://placeholder/chat") { Content = new StringContent("{\"stream\":true}") },
            HttpCompletionOption.ResponseHeadersRead);
        var body = await response.Content.ReadAsStringAsync();
        elapsed.Stop();

        response.Headers.GetValues("x-backend").Should().Equal("b");
        body.Should().Be(Events);
        elapsed.Elapsed.Should().BeLessThan(
            TimeSpan.FromSeconds(3), "the 500 ms first-byte timeout fails over long before the 5 s stall ends (typically ~0.6 s; the bound allows a loaded machine)");
        marked.Should().Equal(("a", BackendUnavailableReason.Timeout));
        A.Hits.Should().Be(1);
    }

    [Fact]
    public async Task A_first_byte_in_time_then_a_slow_stream_does_not_fail_over_and_arrives_as_written()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var finished = false;
        A.Behave(async (context, _) =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync("data: {\"delta\":\"first\"}\n\n");
            await context.Response.Body.FlushAsync();
            await release.Task.WaitAsync(TimeSpan.FromSeconds(20));
            await context.Response.WriteAsync(Events);
            finished = true;
        });
        B.Behave(WriteEvents);
        using var provider = Handler(o => o.Routing.FirstByteTimeout = TimeSpan.FromMilliseconds(500));
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");

        using var response = await client.SendAsync(new HttpRequestMessage(HttpMethod.Post, "http://placeholder/chat"), HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var firstEvent = await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(10));

        firstEvent.Should().Be("data: {\"delta\":\"first\"}");
        finished.Should().BeFalse("the first event reaches the caller before the backend finishes");

        // Slower than the first-byte timeout between two events: a stream that already belongs to the caller goes on.
        await Task.Delay(TimeSpan.FromSeconds(1));
        release.SetResult();

        (await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(20))).Should().Be("\n" + Events);
        B.Hits.Should().Be(0);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_stream_aborted_after_three_events_throws_the_transports_exception_and_five_in_a_row_eject_the_backend(bool firstByteTimeout)
    {
        // With the defaults too (no streaming option set): every body that goes back to the caller is watched.
        // The backend aborts once the caller has read its three events: an earlier reset could overtake them on the wire.
        var eventsRead = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        A.Behave(async (context, _) =>
        {
            await WriteEvents(context, 0);
            await context.Response.Body.FlushAsync();
            await eventsRead.Task.WaitAsync(TimeSpan.FromSeconds(20));
            context.Abort();
        });
        B.Behave(WriteEvents);
        var services = new ServiceCollection();
        services.AddLogging(logging => logging.AddFakeLogging().SetMinimumLevel(LogLevel.Information));
        services.AddSingleton<IBackendStateStore>(new InMemoryBackendStateStore());
        services.AddHttpClient("aoai").AddPriorityRoutingHandler(o =>
        {
            o.Routing.FirstByteTimeout = firstByteTimeout ? TimeSpan.FromSeconds(10) : null;
            o.Routing.Backends.Add(new PriorityBackend { Name = "a", BaseAddress = A.Address });
            o.Routing.Backends.Add(new PriorityBackend { Name = "b", BaseAddress = B.Address, Priority = 2 });
        });
        using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");
        var logs = provider.GetRequiredService<FakeLogCollector>();

        for (var i = 1; i <= 5; i++)
        {
            eventsRead = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            using var response = await client.SendAsync(new HttpRequestMessage(HttpMethod.Post, "http://placeholder/chat"), HttpCompletionOption.ResponseHeadersRead);
            response.Headers.GetValues("x-backend").Should().Equal("a");
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            var lines = new List<string>();
            var readAll = async () =>
            {
                while (await reader.ReadLineAsync() is { } line)
                {
                    lines.Add(line);
                    if (lines.Count == 6)
                    {
                        eventsRead.SetResult();
                    }
                }
            };

            await readAll.Should().ThrowAsync<IOException>("the caller sees the transport's own exception");
            lines.Where(line => line.Length > 0).Should().HaveCount(3);
            logs.GetSnapshot().Count(r => r.Message.Contains("broke after reaching the caller", StringComparison.Ordinal)).Should().Be(i, "the failure counter moves");
        }

        using var afterEjection = await client.GetAsync("http://placeholder/chat");
        afterEjection.Headers.GetValues("x-backend").Should().Equal(new[] { "b" }, "five broken streams in a row eject a");
        logs.GetSnapshot().Should().ContainSingle(r => r.Id.Id == 6 && r.Message.Contains("'a'", StringComparison.Ordinal));
        A.Hits.Should().Be(5);
    }

    public static TheoryData<string> EmptyBodies => ["204", "Content-Length: 0", "HEAD"];

    [Theory]
    [MemberData(nameof(EmptyBodies))]
    public async Task Empty_bodies_and_HEAD_never_wait_for_a_byte(string kind)
    {
        A.Behave((context, _) =>
        {
            context.Response.StatusCode = kind == "204" ? 204 : 200;
            context.Response.ContentLength = kind == "HEAD" ? 1234 : 0;
            return Task.CompletedTask;
        });
        using var provider = Handler(o => o.Routing.FirstByteTimeout = TimeSpan.FromSeconds(30));
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");

        var elapsed = Stopwatch.StartNew();
        using var response = await client.SendAsync(
            new HttpRequestMessage(kind == "HEAD" ? HttpMethod.Head : HttpMethod.Get, "http://placeholder/"), HttpCompletionOption.ResponseHeadersRead);

        response.StatusCode.Should().Be(kind == "204" ? HttpStatusCode.NoContent : HttpStatusCode.OK);
        response.Content.GetType().Name.Should().NotBe("WatchedContent", "nothing was read ahead, so the transport's own content comes back");
        elapsed.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(15));
        B.Hits.Should().Be(0);
    }

    [Fact]
    public async Task Latency_aware_choice_sends_most_requests_to_the_fast_backend_and_a_recovered_one_wins_its_share_back()
    {
        // A base latency as model servers have, so that loopback jitter does not dominate; b adds 300 ms.
        var baseLatency = TimeSpan.FromMilliseconds(30);
        var extra = TimeSpan.FromMilliseconds(300);
        A.Behave(async (context, _) =>
        {
            await Task.Delay(baseLatency);
            await context.Response.WriteAsync("a");
        });
        B.Behave(async (context, _) =>
        {
            await Task.Delay(baseLatency + extra);
            await context.Response.WriteAsync("b");
        });
        using var provider = Handler(o =>
        {
            o.Routing.SelectionMode = BackendSelectionMode.LatencyAware;
            o.Routing.Backends[1].Priority = 1;
        });
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");

        await SendMany(client, 20);
        var measured = await SendMany(client, 50);

        measured.Count(backend => backend == "a").Should().BeGreaterThanOrEqualTo(40, "at least 80 % go to the fast backend after warm-up (expected ~95 %)");

        extra = TimeSpan.Zero;
        var recent = new Queue<string>();
        var requests = 0;
        while (recent.Count(backend => backend == "b") < 5 && requests < 400)
        {
            recent.Enqueue((await SendMany(client, 1))[0]);
            if (recent.Count > 20)
            {
                recent.Dequeue();
            }

            requests++;
        }

        recent.Count(backend => backend == "b").Should().BeGreaterThanOrEqualTo(5, "the recovered backend wins a share back (expected within ~150 requests, bound 400)");
    }

    private static Task WriteEvents(HttpContext context, int hit)
    {
        context.Response.ContentType = "text/event-stream";
        return context.Response.WriteAsync(Events);
    }

    private static async Task<string[]> SendMany(HttpClient client, int count)
    {
        var backends = new string[count];
        for (var i = 0; i < count; i++)
        {
            using var response = await client.GetAsync("http://placeholder/");
            backends[i] = await response.Content.ReadAsStringAsync();
        }

        return backends;
    }

    private ServiceProvider Handler(Action<PriorityRoutingHandlerOptions> configure)
    {
        var services = new ServiceCollection();
        services.AddSingleton<IBackendStateStore>(new InMemoryBackendStateStore());
        services.AddHttpClient("aoai").AddPriorityRoutingHandler(o =>
        {
            o.Routing.Backends.Add(new PriorityBackend { Name = "a", BaseAddress = A.Address });
            o.Routing.Backends.Add(new PriorityBackend { Name = "b", BaseAddress = B.Address, Priority = 2 });
            configure(o);
        });
        return services.BuildServiceProvider();
    }
}
