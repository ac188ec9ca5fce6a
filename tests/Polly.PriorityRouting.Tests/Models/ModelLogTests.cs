using System.Net;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Models;

public class ModelLogTests
{
    private readonly FakeLogCollector _logs = new();

    [Fact]
    public void The_models_are_logged_once_per_pipeline_build_with_what_happens_to_other_names()
    {
        var a = RoutingHarness.Backend("a", 1);
        a.Models["gpt-4o"] = "gpt-4o-ptu";
        a.Models["gpt-4o-latest"] = "gpt-4o-ptu";

        using var h = Harness(a, RoutingHarness.Backend("b", 2));

        _logs.GetSnapshot().Select(r => (r.Id.Id, r.Level, r.Message)).Should().Equal((
            20,
            LogLevel.Information,
            "Models: 'gpt-4o' on a as 'gpt-4o-ptu', b unchanged; 'gpt-4o-latest' on a as 'gpt-4o-ptu', b unchanged. Other model names are sent unchanged to b."));
    }

    [Fact]
    public void The_startup_log_shows_each_models_fallbacks()
    {
        var a = RoutingHarness.Backend("a", 1);
        a.Models["gpt-4o"] = "gpt-4o-ptu";
        var b = RoutingHarness.Backend("b", 2);
        b.Models["gpt-4o-mini"] = "mini";
        b.Models["gpt-4o-128k"] = "big";

        using var h = Harness(
            o =>
            {
                o.ModelFallbacks["gpt-4o"] = ["gpt-4o-mini", "gpt-4o-128k"];
                o.ContextWindowFallbacks["gpt-4o"] = ["gpt-4o-128k"];
            },
            a,
            b);

        _logs.GetSnapshot().Single(r => r.Id.Id == 20).Message.Should().Be(
            "Models: 'gpt-4o' on a as 'gpt-4o-ptu', then 'gpt-4o-mini', then 'gpt-4o-128k', prompts too long for it to 'gpt-4o-128k'; " +
            "'gpt-4o-128k' on b as 'big'; 'gpt-4o-mini' on b as 'mini'. Other model names are answered 404 without calling a backend.");
    }

    [Fact]
    public async Task A_request_going_on_to_a_fallback_model_is_logged_once()
    {
        var a = RoutingHarness.Backend("a", 1);
        a.Models["gpt-4o"] = "gpt-4o-ptu";
        var b = RoutingHarness.Backend("b", 2);
        b.Models["gpt-4o-mini"] = "mini";
        using var h = Harness(o => o.ModelFallbacks["gpt-4o"] = ["gpt-4o-mini"], a, b);
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "30"));

        (await h.Client.PostAsync("/v1/chat/completions", new StringContent("{\"model\":\"gpt-4o\"}", Encoding.UTF8, "application/json"))).Dispose();

        _logs.GetSnapshot().Where(r => r.Id.Id == 22).Select(r => (r.Level, r.Message)).Should().Equal((
            LogLevel.Information,
            "Falling back from model 'gpt-4o' to model 'gpt-4o-mini' (attempt 1)."));
    }

    [Fact]
    public async Task A_name_no_backend_serves_is_logged_at_debug_bounded()
    {
        var a = RoutingHarness.Backend("a", 1);
        a.Models["gpt-4o"] = "gpt-4o-ptu";
        using var h = Harness(a);

        (await h.Client.PostAsync("/v1/chat/completions", new StringContent("{\"model\":\"" + new string('x', 300) + "\"}", Encoding.UTF8, "application/json"))).Dispose();

        _logs.GetSnapshot().Where(r => r.Id.Id == 21).Select(r => (r.Level, r.Message)).Should().Equal((
            LogLevel.Debug,
            $"No backend serves model '{new string('x', 256)}…'; answering 404 without calling a backend."));
    }

    private RoutingHarness Harness(params PriorityBackend[] backends) => Harness(_ => { }, backends);

    private RoutingHarness Harness(Action<PriorityRoutingStrategyOptions> configure, params PriorityBackend[] backends) => new(o =>
    {
        o.Randomizer = _ => 0;
        o.LoggerFactory = LoggerFactory.Create(b => b.AddProvider(new FakeLoggerProvider(_logs)).SetMinimumLevel(LogLevel.Trace));
        configure(o);
    }, backends);
}
