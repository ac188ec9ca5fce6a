using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;
using Polly.PriorityRouting.IntegrationTests.Support;

namespace Polly.PriorityRouting.IntegrationTests.DependencyInjection;

/// <summary>
/// The one-line handler's defaults as a new LLM app meets them: long completions, logs at the right level.
/// </summary>
public sealed class HandlerDefaultsTests : ThreeBackendsTestBase
{
    [Fact]
    public async Task With_the_defaults_a_40_second_completion_is_served_by_its_first_backend_and_generated_once()
    {
        // The pipeline's timeouts run on the TimeProvider registered in DI, and so does the backend's generation: the
        // 40 s pass on a fake clock, in one-second steps, and the test takes no 40 s of wall clock.
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 6, 12, 0, 0, TimeSpan.Zero));
        var generating = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        A.Behave(async (context, hit) =>
        {
            var generation = Task.Delay(TimeSpan.FromSeconds(40), time, context.RequestAborted);
            generating.TrySetResult();
            await generation;
            await FakeBackend.Ok(context, hit);
        });
        var services = new ServiceCollection();
        services.AddSingleton<TimeProvider>(time);
        services.AddSingleton<IBackendStateStore>(new InMemoryBackendStateStore());
        services.AddHttpClient("aoai").AddPriorityRoutingHandler(o =>
        {
            o.Routing.Backends.Add(new PriorityBackend { Name = "a", BaseAddress = A.Address, Priority = 1 });
            o.Routing.Backends.Add(new PriorityBackend { Name = "b", BaseAddress = B.Address, Priority = 2 });
        });
        using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");

        var call = client.PostAsync("http://placeholder/openai/deployments/gpt-4o/chat/completions", new StringContent("{}"));
        await generating.Task.WaitAsync(TimeSpan.FromSeconds(10));
        for (var second = 0; second < 40 && !call.IsCompleted; second++)
        {
            time.Advance(TimeSpan.FromSeconds(1));
            await Task.Yield();
        }

        using var response = await call.WaitAsync(TimeSpan.FromSeconds(10));
        response.StatusCode.Should().Be(HttpStatusCode.OK);
        response.Headers.GetValues("x-backend").Should().Equal("a");
        (A.Hits, B.Hits).Should().Be((1, 0), "the completion is generated once, by the backend that took it");
        client.Timeout.Should().Be(System.Threading.Timeout.InfiniteTimeSpan, "HttpClient's 100 s default would cut the handler's 5 min total timeout");
    }

    [Fact]
    public void A_timeout_the_user_set_on_the_client_stays()
    {
        var services = new ServiceCollection();
        services.AddHttpClient("aoai", c => c.Timeout = TimeSpan.FromSeconds(42))
            .AddPriorityRoutingHandler(o => o.Routing.Backends.Add(new PriorityBackend { BaseAddress = A.Address }));
        using var provider = services.BuildServiceProvider();

        provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai").Timeout.Should().Be(TimeSpan.FromSeconds(42));
    }

    [Fact]
    public async Task An_absorbed_429_is_one_warning_across_every_log_category()
    {
        A.Throttle(30);
        using var provider = LoggedHandler(out var client);

        using var response = await client.GetAsync("http://placeholder/openai/models");

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        response.Headers.GetValues("x-backend").Should().Equal("b");
        var records = provider.GetRequiredService<FakeLogCollector>().GetSnapshot();
        records.Where(r => r.Level >= LogLevel.Warning).Select(r => (r.Category, r.Level, r.Message)).Should().Equal(
            ("Polly.PriorityRouting", LogLevel.Warning, "Backend 'a' (priority 1) is unavailable for 30000 ms: Throttled."));
    }

    [Fact]
    public async Task Routine_exhaustion_logs_nothing_at_error_and_one_warning_per_backend_429()
    {
        foreach (var backend in new[] { A, B, C })
        {
            backend.Behave((context, _) => FakeBackend.Status(context, 429, ("retry-after-ms", "20")));
        }

        using var provider = LoggedHandler(out var client);

        using var response = await client.GetAsync("http://placeholder/openai/models");

        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        var records = provider.GetRequiredService<FakeLogCollector>().GetSnapshot();
        records.Where(r => r.Level >= LogLevel.Error).Select(r => $"{r.Category}: {r.Message}").Should().BeEmpty();
        var backendCalls = A.Hits + B.Hits + C.Hits;
        backendCalls.Should().BeInRange(4, (3 + 1) * 3, "each of the handler's 4 tries calls the backends free by then");
        records.Where(r => r.Level == LogLevel.Warning).Should().HaveCount(backendCalls)
            .And.OnlyContain(r => r.Category == "Polly.PriorityRouting" && r.Message.EndsWith("ms: Throttled.", StringComparison.Ordinal));
    }

    private ServiceProvider LoggedHandler(out HttpClient client)
    {
        var services = new ServiceCollection();
        services.AddLogging(logging => logging.AddFakeLogging().SetMinimumLevel(LogLevel.Trace));
        services.AddSingleton<IBackendStateStore>(new InMemoryBackendStateStore());
        services.AddHttpClient("aoai").AddPriorityRoutingHandler(o =>
        {
            o.Routing.Backends.Add(new PriorityBackend { Name = "a", BaseAddress = A.Address, Priority = 1 });
            o.Routing.Backends.Add(new PriorityBackend { Name = "b", BaseAddress = B.Address, Priority = 2 });
            o.Routing.Backends.Add(new PriorityBackend { Name = "c", BaseAddress = C.Address, Priority = 3 });
        });
        var provider = services.BuildServiceProvider();
        client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");
        return provider;
    }
}
