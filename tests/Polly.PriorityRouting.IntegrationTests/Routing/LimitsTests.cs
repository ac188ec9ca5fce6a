using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Polly.PriorityRouting.IntegrationTests.Support;

namespace Polly.PriorityRouting.IntegrationTests.Routing;

/// <summary>
/// Declared quotas (<c>TokensPerMinute</c>) and concurrency caps (<c>MaxConcurrentRequests</c>) from configuration,
/// through the one-line handler over real Kestrel backends.
/// </summary>
/// <remarks>
/// Slow backends hold each request until the test releases it (or a generous guard passes), so nothing depends on how
/// long anything took.
/// </remarks>
public sealed class LimitsTests : ThreeBackendsTestBase
{
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task A_declared_quota_sends_the_second_large_request_to_the_next_backend()
    {
        using var provider = Client(new() { ["0:TokensPerMinute"] = "1000" }, out _);
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");

        using var first = await client.PostAsync("http://placeholder/chat", Chat(600));
        using var second = await client.PostAsync("http://placeholder/chat", Chat(600));

        first.Headers.GetValues("x-backend").Should().Equal("a");
        second.Headers.GetValues("x-backend").Should().Equal(["b"], "a vLLM server that sends no rate-limit headers is admitted on its declared 1,000 tokens a minute");
        (A.Hits, B.Hits).Should().Be((1, 1));
    }

    [Fact]
    public async Task Budgets_the_backend_reports_override_its_declared_quota()
    {
        A.Behave((context, _) =>
        {
            context.Response.Headers["x-ratelimit-remaining-tokens"] = "100000";
            context.Response.Headers["x-ratelimit-limit-tokens"] = "100000";
            context.Response.Headers["x-ratelimit-reset-tokens"] = "60s";
            return context.Response.WriteAsync("{}");
        });
        using var provider = Client(new() { ["0:TokensPerMinute"] = "1000" }, out _);
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");

        for (var i = 0; i < 3; i++)
        {
            using var response = await client.PostAsync("http://placeholder/chat", Chat(600));
            response.Headers.GetValues("x-backend").Should().Equal("a");
        }

        (A.Hits, B.Hits).Should().Be((3, 0));
    }

    [Fact]
    public async Task A_cap_of_two_holds_under_five_concurrent_slow_requests()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var arrived = 0;
        var inFlightOnA = 0;
        var mostInFlightOnA = 0;
        A.Behave(async (context, _) =>
        {
            InterlockedMax(ref mostInFlightOnA, Interlocked.Increment(ref inFlightOnA));
            Arrive(ref arrived, 5, release);
            await Task.WhenAny(release.Task, Task.Delay(Guard));
            await context.Response.WriteAsync("a");
            Interlocked.Decrement(ref inFlightOnA);
        });
        B.Behave(async (context, _) =>
        {
            Arrive(ref arrived, 5, release);
            await Task.WhenAny(release.Task, Task.Delay(Guard));
            await context.Response.WriteAsync("b");
        });
        using var provider = Client(new() { ["0:MaxConcurrentRequests"] = "2" }, out var exhausted);
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");

        var responses = await Task.WhenAll(Enumerable.Range(0, 5).Select(_ => client.GetAsync("http://placeholder/chat")));

        responses.Select(r => r.StatusCode).Should().AllBeEquivalentTo(HttpStatusCode.OK);
        release.Task.IsCompleted.Should().BeTrue("all five were in flight at once, none waited for another");
        mostInFlightOnA.Should().Be(2);
        (A.Hits, B.Hits).Should().Be((2, 3));
        exhausted.Should().BeEmpty();
        responses.ToList().ForEach(r => r.Dispose());
    }

    [Fact]
    public async Task When_every_backend_is_at_its_cap_the_caller_is_answered_at_once()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var arrived = 0;
        var bothIn = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        foreach (var backend in new[] { A, B })
        {
            backend.Behave(async (context, _) =>
            {
                Arrive(ref arrived, 2, bothIn);
                await Task.WhenAny(release.Task, Task.Delay(Guard));
                await context.Response.WriteAsync("done");
            });
        }

        using var provider = Client(new() { ["0:MaxConcurrentRequests"] = "1", ["1:MaxConcurrentRequests"] = "1" }, out var exhausted);
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");
        var held = Enumerable.Range(0, 2).Select(_ => client.GetAsync("http://placeholder/chat")).ToList();
        await bothIn.Task.WaitAsync(Guard);

        // The handler's retry waits out the 1 s Retry-After; the exhausted answer itself comes while both are held.
        var third = client.GetAsync("http://placeholder/chat");
        await WaitUntilAsync(() => exhausted.Count > 0);
        release.Task.IsCompleted.Should().BeFalse();
        release.TrySetResult();

        using var served = await third;
        served.StatusCode.Should().Be(HttpStatusCode.OK, "the handler's retry came back after the short Retry-After");
        exhausted.Should().Equal([(HttpStatusCode.TooManyRequests, TimeSpan.FromSeconds(1))]);
        (A.Hits + B.Hits).Should().Be(3, "the exhausted answer called no backend");
        foreach (var response in await Task.WhenAll(held))
        {
            response.Dispose();
        }
    }

    [Fact]
    public async Task A_stream_holds_its_slot_until_it_is_read_to_the_end()
    {
        var finish = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        A.Behave(async (context, hit) =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync("data: first\n\n");
            await context.Response.Body.FlushAsync();
            if (hit == 1)
            {
                await Task.WhenAny(finish.Task, Task.Delay(Guard));
            }

            await context.Response.WriteAsync("data: [DONE]\n\n");
        });
        using var provider = Client(new() { ["0:MaxConcurrentRequests"] = "1" }, out _);
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");
        var snapshots = provider.GetRequiredService<PriorityRoutingSnapshotProvider>();

        using var stream = await client.SendAsync(new HttpRequestMessage(HttpMethod.Get, "http://placeholder/stream"), HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await stream.Content.ReadAsStreamAsync());
        (await reader.ReadLineAsync()).Should().Be("data: first");
        snapshots.GetSnapshot("aoai").Backends[0].InFlight.Should().Be(1);
        using (var whileStreaming = await client.GetAsync("http://placeholder/chat"))
        {
            whileStreaming.Headers.GetValues("x-backend").Should().Equal(["b"], "the stream still holds a's only slot");
        }

        finish.TrySetResult();
        (await reader.ReadToEndAsync()).Should().Be("\ndata: [DONE]\n\n");
        snapshots.GetSnapshot("aoai").Backends[0].InFlight.Should().Be(0);
        using var afterStream = await client.GetAsync("http://placeholder/chat");

        afterStream.Headers.GetValues("x-backend").Should().Equal("a");
        (A.Hits, B.Hits).Should().Be((2, 1));
    }

    private static void Arrive(ref int arrived, int all, TaskCompletionSource allIn)
    {
        if (Interlocked.Increment(ref arrived) == all)
        {
            allIn.TrySetResult();
        }
    }

    private static void InterlockedMax(ref int target, int value)
    {
        for (var seen = Volatile.Read(ref target); value > seen; seen = Volatile.Read(ref target))
        {
            if (Interlocked.CompareExchange(ref target, value, seen) == seen)
            {
                return;
            }
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + Guard;
        while (!condition())
        {
            DateTime.UtcNow.Should().BeBefore(deadline, "the condition should have come true");
            await Task.Delay(10);
        }
    }

    private static StringContent Chat(int maxTokens)
        => new("{\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],\"max_tokens\":" + maxTokens.ToString(CultureInfo.InvariantCulture) + "}", Encoding.UTF8, "application/json");

    /// <summary>Backends a (tier 1) and b (tier 2), with the given <c>Routing:Backends:{i}:…</c> settings.</summary>
    private ServiceProvider Client(Dictionary<string, string> backendSettings, out List<(HttpStatusCode Status, TimeSpan RetryAfter)> exhausted)
    {
        var settings = new Dictionary<string, string?>
        {
            ["PriorityRouting:Routing:Backends:0:Name"] = "a",
            ["PriorityRouting:Routing:Backends:0:BaseAddress"] = A.Address.ToString(),
            ["PriorityRouting:Routing:Backends:1:Name"] = "b",
            ["PriorityRouting:Routing:Backends:1:BaseAddress"] = B.Address.ToString(),
            ["PriorityRouting:Routing:Backends:1:Priority"] = "2",
        };
        foreach (var (key, value) in backendSettings)
        {
            settings["PriorityRouting:Routing:Backends:" + key] = value;
        }

        var answers = new List<(HttpStatusCode, TimeSpan)>();
        var services = new ServiceCollection();
        services.AddSingleton<IBackendStateStore>(new InMemoryBackendStateStore());
        services.AddHttpClient("aoai")
            .AddPriorityRoutingHandler(new ConfigurationBuilder().AddInMemoryCollection(settings).Build().GetSection("PriorityRouting"))
            .Configure(o => o.Routing.OnBackendsExhausted = args =>
            {
                lock (answers)
                {
                    answers.Add((args.StatusCode, args.RetryAfter));
                }

                return default;
            });
        exhausted = answers;
        return services.BuildServiceProvider();
    }
}
