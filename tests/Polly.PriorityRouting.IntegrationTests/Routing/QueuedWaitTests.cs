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
        exhausted.Should().Equal([HttpStatusCode.TooManyRequests], "the strategy answered 429 and the retry waited out its Retry-After");
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
