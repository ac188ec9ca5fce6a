using System.Net;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Polly.PriorityRouting.IntegrationTests.Support;

namespace Polly.PriorityRouting.IntegrationTests.DependencyInjection;

/// <summary>
/// Taking a backend out without deleting it: <c>Routing:Backends:{i}:Drain</c>, applied by a configuration reload.
/// </summary>
public sealed class DrainTests : ThreeBackendsTestBase
{
    [Fact]
    public async Task A_drained_backend_takes_no_new_request_but_still_serves_the_state_it_holds()
    {
        var responseId = "resp_" + Guid.NewGuid().ToString("N");
        A.Behave((context, _) =>
        {
            context.Response.ContentType = "application/json";
            return context.Response.WriteAsync("{\"id\":\"" + responseId + "\",\"object\":\"response\"}");
        });
        var configuration = Configuration();
        using var provider = Handler(configuration, out var client);

        // Created on a, the best tier: a holds the stored response.
        using (var created = await client.PostAsync("http://placeholder/v1/responses", Json("""{"model":"gpt-4o","input":"hi"}""")))
        {
            (await created.Content.ReadAsStringAsync()).Should().Contain(responseId);
        }

        configuration["PriorityRouting:Routing:Backends:0:Drain"] = "true";
        configuration.Reload();

        using var fresh = await client.PostAsync("http://placeholder/v1/chat/completions", Json("""{"model":"gpt-4o"}"""));
        using var pinned = await client.GetAsync($"http://placeholder/v1/responses/{responseId}");

        fresh.Headers.GetValues("x-backend").Should().Equal(["b"], "a drained backend takes no new request");
        pinned.Headers.GetValues("x-backend").Should().Equal(["a"], "the stored response lives on a");
        (A.Hits, B.Hits).Should().Be((2, 1));
        var snapshot = provider.GetRequiredService<PriorityRoutingSnapshotProvider>().GetSnapshot("aoai");
        snapshot.Backends.Select(b => (b.Name, b.IsDrained, b.IsAvailable)).Should().Equal(("a", true, false), ("b", false, true));
        snapshot.IsTopTierAvailable.Should().BeTrue("the best tier is the best of the backends that take new requests");
        var health = (await provider.GetRequiredService<HealthCheckService>().CheckHealthAsync()).Entries["priority-routing-aoai"];
        health.Status.Should().Be(HealthStatus.Healthy);
        health.Description.Should().Be("1 of 2 backends of 'aoai' available (1 drained).");
        health.Data["a"].Should().Be("a (priority 1): drained; available");

        configuration["PriorityRouting:Routing:Backends:0:Drain"] = "false";
        configuration.Reload();
        using var back = await client.GetAsync("http://placeholder/v1/models");
        back.Headers.GetValues("x-backend").Should().Equal(["a"], "undrained by a reload, a takes new requests again");
    }

    [Fact]
    public async Task With_every_other_backend_throttled_the_exhausted_answer_counts_only_backends_that_take_new_requests()
    {
        B.Behave((context, _) => FakeBackend.Status(context, 429, ("Retry-After", "7")));
        var configuration = Configuration();
        configuration["PriorityRouting:Routing:Backends:0:Drain"] = "true";
        using var provider = Handler(configuration, out var client);

        using var response = await client.GetAsync("http://placeholder/v1/models");

        // a is free but drained: it never returns by time, so "retry after 0" would only make the caller spin.
        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.GetValues("Retry-After").Should().Equal("7");
        (A.Hits, B.Hits).Should().Be((0, 1));
        var health = (await provider.GetRequiredService<HealthCheckService>().CheckHealthAsync()).Entries["priority-routing-aoai"];
        health.Status.Should().Be(HealthStatus.Unhealthy);
        health.Description.Should().MatchRegex(@"^0 of 2 backends of 'aoai' available \(1 drained\); the soonest returns in (6\.\d+|7) s\.$",
            "b's 7 s count down on the real clock; a, drained, is not the soonest");
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    /// <summary>a (priority 1) and b (priority 2); a 5 s total timeout, so that no retry waits for b's 7 s throttle.</summary>
    private IConfigurationRoot Configuration() => new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
    {
        ["PriorityRouting:Routing:Backends:0:Name"] = "a",
        ["PriorityRouting:Routing:Backends:0:BaseAddress"] = A.Address.AbsoluteUri,
        ["PriorityRouting:Routing:Backends:1:Name"] = "b",
        ["PriorityRouting:Routing:Backends:1:BaseAddress"] = B.Address.AbsoluteUri,
        ["PriorityRouting:Routing:Backends:1:Priority"] = "2",
        ["PriorityRouting:TotalRequestTimeout:Timeout"] = "00:00:05",
        ["PriorityRouting:AttemptTimeout:Timeout"] = "00:00:04",
    }).Build();

    private static ServiceProvider Handler(IConfiguration configuration, out HttpClient client)
    {
        var services = new ServiceCollection();
        services.AddSingleton<IBackendStateStore>(new InMemoryBackendStateStore());
        services.AddHttpClient("aoai").AddPriorityRoutingHandler(configuration.GetSection("PriorityRouting"));
        services.AddHealthChecks().AddPriorityRoutingHealthCheck("aoai");
        var provider = services.BuildServiceProvider();
        client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");
        return provider;
    }
}
