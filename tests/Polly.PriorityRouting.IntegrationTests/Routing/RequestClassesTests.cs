using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Polly.PriorityRouting.IntegrationTests.Support;

namespace Polly.PriorityRouting.IntegrationTests.Routing;

/// <summary>
/// Request classes (<see cref="PriorityRoutingHints.Background"/>, <c>Routing:BackgroundHeadroom</c>) through the
/// one-line handler over real Kestrel backends: a (priority 1) reports a budget of 10,000 tokens a minute, b (priority
/// 2) reports none.
/// </summary>
/// <remarks>Requests are sent one after another, so that each admission reads the budget the previous answer reported.</remarks>
public sealed class RequestClassesTests : ThreeBackendsTestBase
{
    private const long Limit = 10_000;

    [Fact]
    public async Task Foreground_requests_are_served_on_the_best_tier_while_background_work_holds_off_at_the_headroom()
    {
        var spent = 0L;
        A.Behave((context, _) =>
        {
            var cost = long.Parse(context.Request.Headers["x-cost"].ToString(), CultureInfo.InvariantCulture);
            var remaining = Limit - Interlocked.Add(ref spent, cost);
            context.Response.Headers["x-ratelimit-remaining-tokens"] = remaining.ToString(CultureInfo.InvariantCulture);
            context.Response.Headers["x-ratelimit-limit-tokens"] = Limit.ToString(CultureInfo.InvariantCulture);
            context.Response.Headers["x-ratelimit-reset-tokens"] = "60s";
            context.Response.ContentType = "text/event-stream";
            return context.Response.WriteAsync("data: {\"remaining\":" + remaining.ToString(CultureInfo.InvariantCulture) + "}\n\ndata: [DONE]\n\n");
        });
        var configuration = Configuration(headroom: "0.25");
        using var provider = Handler(configuration, out var client);

        // 2,500 of a's 10,000 tokens are kept for foreground requests: seven background requests of 1,000 fit above them.
        var background = new List<string>();
        for (var i = 0; i < 10; i++)
        {
            background.Add(await SendAsync(client, cost: 1000, isBackground: true));
        }

        var foreground = new List<string>();
        for (var i = 0; i < 2; i++)
        {
            foreground.Add(await SendAsync(client, cost: 1000, isBackground: false));
        }

        background.Should().Equal("a", "a", "a", "a", "a", "a", "a", "b", "b", "b");
        foreground.Should().Equal(["a", "a"], "the headroom the background work left is the foreground's");
        (A.Hits, B.Hits).Should().Be((9, 3));

        // A reload turns the classes off: background work is admitted like any request again.
        configuration["PriorityRouting:Routing:BackgroundHeadroom"] = "0";
        configuration.Reload();
        (await SendAsync(client, cost: 1000, isBackground: true)).Should().Be("a", "1,000 of a's last 1,000 are no longer kept");
        (A.Hits, B.Hits).Should().Be((10, 3));
        Interlocked.Read(ref spent).Should().Be(Limit, "a served its whole budget without one 429");
    }

    private static async Task<string> SendAsync(HttpClient client, long cost, bool isBackground)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "http://placeholder/v1/chat/completions")
        {
            Content = new StringContent("""{"model":"gpt-4o","stream":true,"messages":[]}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("x-cost", cost.ToString(CultureInfo.InvariantCulture));
        request.Options.Set(PriorityRoutingRequestOptions.Hints, new PriorityRoutingHints { Background = isBackground });
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        var backend = response.Headers.GetValues("x-backend").Single();
        var body = await response.Content.ReadAsStringAsync();
        if (backend == "a")
        {
            body.Should().EndWith("data: [DONE]\n\n", "a's stream reaches the caller whole");
        }

        return backend;
    }

    private IConfigurationRoot Configuration(string headroom) => new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
    {
        ["PriorityRouting:Routing:Backends:0:Name"] = "a",
        ["PriorityRouting:Routing:Backends:0:BaseAddress"] = A.Address.AbsoluteUri,
        ["PriorityRouting:Routing:Backends:1:Name"] = "b",
        ["PriorityRouting:Routing:Backends:1:BaseAddress"] = B.Address.AbsoluteUri,
        ["PriorityRouting:Routing:Backends:1:Priority"] = "2",
        ["PriorityRouting:Routing:BackgroundHeadroom"] = headroom,
    }).Build();

    private static ServiceProvider Handler(IConfiguration configuration, out HttpClient client)
    {
        var services = new ServiceCollection();
        services.AddSingleton<IBackendStateStore>(new InMemoryBackendStateStore());
        services.AddHttpClient("aoai")
            .AddPriorityRoutingHandler(configuration.GetSection("PriorityRouting"))
            .Configure(o => o.Routing.RequestCost = request => long.Parse(request.Headers.GetValues("x-cost").Single(), CultureInfo.InvariantCulture));
        var provider = services.BuildServiceProvider();
        client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");
        return provider;
    }
}
