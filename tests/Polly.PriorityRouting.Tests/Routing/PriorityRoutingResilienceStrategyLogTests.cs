using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Routing;

public class PriorityRoutingResilienceStrategyLogTests
{
    private readonly FakeLogCollector _logs = new();

    [Fact]
    public async Task Logs_unavailability_failover_and_exhaustion_with_documented_ids_and_levels()
    {
        using var h = Harness();
        h.Transport
            .Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "5"))
            .Respond("b", HttpStatusCode.InternalServerError)
            .Throw("c", new HttpRequestException("Connection refused (c:443)"));

        (await h.Client.GetAsync("/")).Dispose();

        _logs.GetSnapshot().Select(r => (r.Id.Id, r.Level, r.Message)).Should().Equal(
            (1, LogLevel.Warning, "Backend 'a' (priority 1) is unavailable for 5000 ms: Throttled."),
            (3, LogLevel.Debug, "Failing over from backend 'a' (priority 1) to 'b' (priority 1), attempt 1."),
            (1, LogLevel.Warning, "Backend 'b' (priority 1) is unavailable for 10000 ms: ServerError."),
            (3, LogLevel.Debug, "Failing over from backend 'b' (priority 1) to 'c' (priority 2), attempt 2."),
            (1, LogLevel.Warning, "Backend 'c' (priority 2) is unavailable for 10000 ms: TransportError."),
            (4, LogLevel.Information, "No backend left to try after 3 attempts; answering 429 with a retry after 5000 ms."));
    }

    [Fact]
    public async Task A_backend_already_out_of_rotation_is_not_warned_about_again()
    {
        using var h = Harness();
        h.Transport.Respond("a", _ =>
        {
            // Another request marked a first, while this one was in flight.
            h.Store.MarkUnavailableAsync(RoutingHarness.Key("a"), new(h.Time.GetUtcNow().AddSeconds(30), BackendUnavailableReason.Throttled), h.Time.GetUtcNow(), default)
                .AsTask().GetAwaiter().GetResult();
            return new HttpResponseMessage(HttpStatusCode.TooManyRequests);
        });

        (await h.Client.GetAsync("/")).Dispose();

        _logs.GetSnapshot().Where(r => r.Level >= LogLevel.Warning).Should().BeEmpty();
        _logs.GetSnapshot().Should().Contain(r => r.Id.Id == 2 && r.Level == LogLevel.Debug &&
            r.Message == "Backend 'a' (priority 1) failed again while unavailable; kept out for 10000 ms more: Throttled.");
    }

    [Fact]
    public async Task An_exhausted_503_is_a_warning_and_an_exhausted_429_is_information_never_an_error()
    {
        using var h = Harness();
        h.Transport.Respond("a", HttpStatusCode.InternalServerError)
            .Respond("b", HttpStatusCode.BadGateway)
            .Respond("c", HttpStatusCode.ServiceUnavailable);

        (await h.Client.GetAsync("/")).Dispose();

        _logs.GetSnapshot().Where(r => r.Id.Id == 4).Select(r => (r.Level, r.Message)).Should().Equal(
            (LogLevel.Warning, "No backend left to try after 3 attempts; answering 503 with a retry after 10000 ms."));
        _logs.GetSnapshot().Should().NotContain(r => r.Level >= LogLevel.Error);
    }

    [Fact]
    public async Task A_failing_store_is_logged_as_a_warning_and_the_request_succeeds()
    {
        using var h = Harness(o => o.StateStore = ScriptedStore.FailingWrites());
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests);

        using var response = await h.Client.GetAsync("/");

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        _logs.GetSnapshot().Should().Contain(r => r.Id.Id == 5 && r.Level == LogLevel.Warning && r.Exception is InvalidOperationException);
    }

    [Fact]
    public async Task Header_values_and_queries_never_reach_the_logs()
    {
        var a = RoutingHarness.Backend("a", 1);
        a.BaseAddress = new Uri("http://a/?code=secret-code");
        a.Headers["api-key"] = "secret-key";
        using var h = Harness(backends: [a, RoutingHarness.Backend("b", 2)]);
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests).Respond("b", HttpStatusCode.TooManyRequests);

        (await h.Client.GetAsync("/x?q=secret-query")).Dispose();

        _logs.GetSnapshot().Should().HaveCount(4).And.OnlyContain(r =>
            !r.Message.Contains("secret", StringComparison.Ordinal) &&
            r.StructuredState!.All(kv => kv.Value == null || !kv.Value.Contains("secret", StringComparison.Ordinal)));
    }

    private RoutingHarness Harness(Action<PriorityRoutingStrategyOptions>? configure = null, params PriorityBackend[] backends) => new(o =>
    {
        o.Randomizer = _ => 0;
        o.LoggerFactory = LoggerFactory.Create(b => b.AddProvider(new FakeLoggerProvider(_logs)).SetMinimumLevel(LogLevel.Trace));
        configure?.Invoke(o);
    }, backends);
}
