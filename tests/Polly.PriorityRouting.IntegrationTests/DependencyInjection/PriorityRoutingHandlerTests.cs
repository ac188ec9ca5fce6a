using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Polly.PriorityRouting.IntegrationTests.Support;

namespace Polly.PriorityRouting.IntegrationTests.DependencyInjection;

public sealed class PriorityRoutingHandlerTests : ThreeBackendsTestBase
{
    [Fact]
    public async Task Secrets_never_reach_logs_over_a_full_failover()
    {
        A.Throttle(30);
        B.Behave((context, _) => FakeBackend.Status(context, 503));
        var services = new ServiceCollection();
        services.AddLogging(logging => logging.AddFakeLogging().SetMinimumLevel(LogLevel.Trace));
        services.AddSingleton<IBackendStateStore>(new InMemoryBackendStateStore());
        services.AddHttpClient("aoai")
            .AddPriorityRoutingHandler(o =>
            {
                var a = new PriorityBackend { Name = "a", BaseAddress = new Uri(A.Address, "?code=sekret-query-value") };
                a.Headers["api-key"] = "sekret-api-key-a";
                o.Routing.Backends.Add(a);
                o.Routing.Backends.Add(new PriorityBackend { Name = "b", BaseAddress = B.Address, Priority = 2 });
                o.Routing.Backends.Add(new PriorityBackend { Name = "c", BaseAddress = C.Address, Priority = 3 });
            })
            .AddBearerToken("b", _ => new ValueTask<string>("sekret-token-b"));
        using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");

        using var response = await client.GetAsync("http://placeholder/openai/chat?user-query=sekret-caller-query");

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        response.Headers.GetValues("x-backend").Should().Equal("c");
        A.Received.Single().Headers["api-key"].Should().Be("sekret-api-key-a");
        A.Received.Single().Query.Should().Be("?code=sekret-query-value&user-query=sekret-caller-query");
        B.Received.Single().Headers["Authorization"].Should().Be("Bearer sekret-token-b");

        var records = provider.GetRequiredService<FakeLogCollector>().GetSnapshot();
        records.Count(r => r.Message.Contains("OnBackendUnavailable", StringComparison.Ordinal)).Should().Be(2);
        records.Should().NotBeEmpty().And.OnlyContain(r =>
            !r.Message.Contains("sekret", StringComparison.Ordinal) &&
            (r.StructuredState == null || r.StructuredState.All(kv => kv.Value == null || !kv.Value.Contains("sekret", StringComparison.Ordinal))) &&
            (r.Exception == null || !r.Exception.ToString().Contains("sekret", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task The_retry_waits_for_the_exhausted_answer_and_succeeds_within_the_total_timeout()
    {
        // Both backends throttle for 800 ms from the first request they see, not from the test's start: building the
        // provider and the first request's JIT can take longer than that on a loaded machine, and then nothing throttled.
        var sinceFirstHit = new Stopwatch();
        Task Throttled800Ms(Microsoft.AspNetCore.Http.HttpContext context, int hit)
        {
            lock (sinceFirstHit)
            {
                if (!sinceFirstHit.IsRunning)
                {
                    sinceFirstHit.Start();
                }
            }

            return sinceFirstHit.ElapsedMilliseconds < 800
                ? FakeBackend.Status(context, 429, ("retry-after-ms", "800"), ("Retry-After", "1"))
                : FakeBackend.Ok(context, hit);
        }

        A.Behave(Throttled800Ms);
        B.Behave(Throttled800Ms);
        var services = new ServiceCollection();
        services.AddSingleton<IBackendStateStore>(new InMemoryBackendStateStore());
        services.AddHttpClient("aoai").AddPriorityRoutingHandler(o =>
        {
            o.Routing.Backends.Add(new PriorityBackend { Name = "a", BaseAddress = A.Address });
            o.Routing.Backends.Add(new PriorityBackend { Name = "b", BaseAddress = B.Address, Priority = 2 });
        });
        using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");

        using var response = await client.GetAsync("http://placeholder/");

        sinceFirstHit.Stop();
        response.StatusCode.Should().Be(HttpStatusCode.OK);
        sinceFirstHit.Elapsed.Should().BeGreaterThanOrEqualTo(TimeSpan.FromMilliseconds(750)).And.BeLessThan(TimeSpan.FromSeconds(3),
            "retry-after-ms is honoured to the millisecond, not rounded up to whole seconds");
        A.Hits.Should().Be(2);
        B.Hits.Should().Be(1);
    }

    [Fact]
    public async Task A_json_file_reload_replaces_the_backends_without_a_restart()
    {
        var directory = Directory.CreateTempSubdirectory("priority-routing-");
        var file = Path.Combine(directory.FullName, "appsettings.json");
        await File.WriteAllTextAsync(file, Settings(A, B));
        try
        {
            var configuration = new ConfigurationBuilder()
                .AddJsonFile(file, optional: false, reloadOnChange: true)
                .Build();
            var services = new ServiceCollection();
            services.AddSingleton<IBackendStateStore>(new InMemoryBackendStateStore());
            services.AddHttpClient("aoai").AddPriorityRoutingHandler(configuration.GetSection("PriorityRouting"));
            using var provider = services.BuildServiceProvider();
            var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");
            (await client.GetAsync("http://placeholder/")).Dispose();

            await File.WriteAllTextAsync(file, Settings(C, B));
            var deadline = Stopwatch.StartNew();
            while (C.Hits == 0 && deadline.Elapsed < TimeSpan.FromSeconds(10))
            {
                (await client.GetAsync("http://placeholder/")).Dispose();
                await Task.Delay(100);
            }

            C.Hits.Should().BeGreaterThan(0, "the reloaded backend list routes to c");
            B.Hits.Should().Be(0);
            var aHits = A.Hits;
            (await client.GetAsync("http://placeholder/")).Dispose();
            A.Hits.Should().Be(aHits, "a left the configuration");
        }
        finally
        {
            directory.Delete(recursive: true);
        }

        static string Settings(FakeBackend first, FakeBackend second) => $$"""
            {
              "PriorityRouting": {
                "Routing": {
                  "Backends": [
                    { "Name": "{{first.Name}}", "BaseAddress": "{{first.Address}}", "Priority": 1 },
                    { "Name": "{{second.Name}}", "BaseAddress": "{{second.Address}}", "Priority": 2 }
                  ]
                }
              }
            }
            """;
    }
}
