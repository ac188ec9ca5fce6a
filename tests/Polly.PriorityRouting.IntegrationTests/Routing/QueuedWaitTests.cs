using System.Net;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Polly.PriorityRouting.IntegrationTests.Support;

namespace Polly.PriorityRouting.IntegrationTests.Routing;

/// <summary>
/// <c>Routing:MaxQueueWait</c> through the one-line handler over a real Kestrel backend: a caller that finds the
/// budget spent waits for the refill inside routing instead of getting the exhausted 429.
/// </summary>
/// <remarks>
/// The backend's budget refills 2 s after its first answer; the second request is sent right after that answer, so
/// it finds the budget spent on any machine. No assertion depends on how long anything took.
/// </remarks>
public sealed class QueuedWaitTests : ThreeBackendsTestBase
{
    [Fact]
    public async Task A_caller_that_finds_the_budget_spent_is_served_after_the_refill_without_an_exhausted_answer()
    {
        using var provider = Client(maxQueueWait: "00:00:05", out var exhausted);
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");

        using var first = await client.PostAsync("http://placeholder/chat", Chat());
        using var second = await client.PostAsync("http://placeholder/chat", Chat());

        first.StatusCode.Should().Be(HttpStatusCode.OK);
        second.StatusCode.Should().Be(HttpStatusCode.OK);
        A.Hits.Should().Be(2);
        exhausted.Should().BeEmpty("the second caller waited in routing instead of getting a 429 to retry");
    }

    [Fact]
    public async Task Without_a_queue_wait_the_same_caller_is_answered_429_and_served_by_the_handlers_retry()
    {
        using var provider = Client(maxQueueWait: null, out var exhausted);
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");

        using var first = await client.PostAsync("http://placeholder/chat", Chat());
        using var second = await client.PostAsync("http://placeholder/chat", Chat());

        second.StatusCode.Should().Be(HttpStatusCode.OK);
        A.Hits.Should().Be(2);
        // The retry waits out retry-after-ms; a timer may fire a millisecond early, so at most once more the strategy
        // answers 429 for the last moments of the refill (the same allowance as the SDK tests'). Never a 503.
        exhausted.Should().NotBeEmpty().And.HaveCountLessThanOrEqualTo(2)
            .And.OnlyContain(status => status == HttpStatusCode.TooManyRequests, "the strategy answered 429 and the retry waited out its Retry-After");
    }

    [Fact]
    public async Task Waiters_released_by_one_refill_call_the_backend_together_with_a_synchronous_Send()
    {
        // The first answer spends the budget for 2 s. Three synchronous callers then wait for that refill, which has
        // room for all three; the backend holds each call until all three are in (or a guard, were they serialized).
        var inFlight = 0;
        var mostInFlight = 0;
        var allIn = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var provider = Client(maxQueueWait: "00:00:10", out var exhausted);
        A.Behave(async (context, hit) =>
        {
            context.Response.ContentType = "application/json";
            if (hit == 1)
            {
                context.Response.Headers["x-ratelimit-remaining-tokens"] = "0";
                context.Response.Headers["x-ratelimit-limit-tokens"] = "10000";
                context.Response.Headers["x-ratelimit-reset-tokens"] = "2s";
                await context.Response.WriteAsync("{}");
                return;
            }

            var now = Interlocked.Increment(ref inFlight);
            InterlockedMax(ref mostInFlight, now);
            if (now == 3)
            {
                allIn.TrySetResult();
            }

            await Task.WhenAny(allIn.Task, Task.Delay(TimeSpan.FromSeconds(5)));
            Interlocked.Decrement(ref inFlight);
            await context.Response.WriteAsync("{}");
        });
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");
        using (var spend = client.Send(new HttpRequestMessage(HttpMethod.Post, "http://placeholder/chat") { Content = Chat() }))
        {
            spend.StatusCode.Should().Be(HttpStatusCode.OK);
        }

        var statuses = new HttpStatusCode[3];
        var callers = Enumerable.Range(0, 3).Select(i => new Thread(() =>
        {
            using var response = client.Send(new HttpRequestMessage(HttpMethod.Post, "http://placeholder/chat") { Content = Chat() });
            statuses[i] = response.StatusCode;
        })).ToList();
        callers.ForEach(caller => caller.Start());
        await Task.Run(() => callers.ForEach(caller => caller.Join()));

        statuses.Should().Equal(HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK);
        A.Hits.Should().Be(4);
        exhausted.Should().BeEmpty("the three waited for the refill in routing");
        mostInFlight.Should().Be(3, "the waiters one refill releases call the backend at the same time, not one after another");
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

    private ServiceProvider Client(string? maxQueueWait, out List<HttpStatusCode> exhausted)
    {
        A.Behave((context, hit) =>
        {
            context.Response.Headers["x-ratelimit-remaining-tokens"] = "0";
            context.Response.Headers["x-ratelimit-limit-tokens"] = "10000";
            context.Response.Headers["x-ratelimit-reset-tokens"] = "2s";
            context.Response.ContentType = "application/json";
            return context.Response.WriteAsync("{}");
        });
        var settings = new Dictionary<string, string?>
        {
            ["PriorityRouting:Routing:Backends:0:Name"] = "a",
            ["PriorityRouting:Routing:Backends:0:BaseAddress"] = A.Address.ToString(),
        };
        if (maxQueueWait is not null)
        {
            settings["PriorityRouting:Routing:MaxQueueWait"] = maxQueueWait;
        }

        var answers = new List<HttpStatusCode>();
        var services = new ServiceCollection();
        services.AddSingleton<IBackendStateStore>(new InMemoryBackendStateStore());
        services.AddHttpClient("aoai")
            .AddPriorityRoutingHandler(new ConfigurationBuilder().AddInMemoryCollection(settings).Build().GetSection("PriorityRouting"))
            .Configure(o => o.Routing.OnBackendsExhausted = args =>
            {
                lock (answers)
                {
                    answers.Add(args.StatusCode);
                }

                return default;
            });
        exhausted = answers;
        return services.BuildServiceProvider();
    }

    private static StringContent Chat()
        => new("{\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],\"max_tokens\":100}", Encoding.UTF8, "application/json");
}
