using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Models;

public class ModelMapConfigurationTests
{
    [Fact]
    public async Task Models_bind_from_configuration_and_route_with_each_backends_own_name()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["PriorityRouting:Routing:Backends:0:Name"] = "ptu",
            ["PriorityRouting:Routing:Backends:0:BaseAddress"] = "https://ptu.example/",
            ["PriorityRouting:Routing:Backends:0:Models:gpt-4o"] = "gpt-4o-ptu",
            ["PriorityRouting:Routing:Backends:1:Name"] = "paygo",
            ["PriorityRouting:Routing:Backends:1:BaseAddress"] = "https://paygo.example/",
            ["PriorityRouting:Routing:Backends:1:Priority"] = "2",
            ["PriorityRouting:Routing:Backends:1:Models:gpt-4o"] = "gpt-4o",
            ["PriorityRouting:Routing:Backends:1:Models:o3"] = "o3-2025-04-16",
        }).Build();
        var logs = new FakeLogCollector();
        var transport = new RecordingHandler().Respond("ptu.example", HttpStatusCode.TooManyRequests, ("Retry-After", "60"));
        var services = new ServiceCollection();
        services.AddLogging(b => b.AddProvider(new FakeLoggerProvider(logs)).SetMinimumLevel(LogLevel.Trace));
        services.AddSingleton<IBackendStateStore>(new InMemoryBackendStateStore());
        services.AddHttpClient("aoai").ConfigurePrimaryHttpMessageHandler(() => transport)
            .AddPriorityRoutingHandler(config.GetSection("PriorityRouting"));
        using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");

        var routing = provider.GetRequiredService<IOptionsMonitor<PriorityRoutingHandlerOptions>>().Get(PriorityRoutingHandlerNames.OptionsName("aoai")).Routing;
        routing.Backends.Select(b => string.Join(",", b.Models.Select(m => $"{m.Key}={m.Value}"))).Should().Equal("gpt-4o=gpt-4o-ptu", "gpt-4o=gpt-4o,o3=o3-2025-04-16");

        (await client.PostAsync("http://placeholder/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", new StringContent("{}"))).Dispose();
        (await client.PostAsync("http://placeholder/openai/deployments/o3/chat/completions?api-version=2024-10-21", new StringContent("{}"))).Dispose();

        transport.Requests.Select(r => r.Uri.AbsoluteUri).Should().Equal(
            "https://ptu.example/openai/deployments/gpt-4o-ptu/chat/completions?api-version=2024-10-21",
            "https://paygo.example/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
            "https://paygo.example/openai/deployments/o3-2025-04-16/chat/completions?api-version=2024-10-21");
        logs.GetSnapshot().Where(r => r.Id.Id == 20).Select(r => (r.Level, r.Message)).Should().Equal((
            LogLevel.Information,
            "Models: 'gpt-4o' on ptu as 'gpt-4o-ptu', paygo as 'gpt-4o'; 'o3' on paygo as 'o3-2025-04-16'. Other model names are answered 404 without calling a backend."));
    }

    [Fact]
    public void An_empty_deployment_name_in_configuration_fails_at_start_naming_the_field()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["PriorityRouting:Routing:Backends:0:BaseAddress"] = "https://a.example/",
            ["PriorityRouting:Routing:Backends:0:Models:gpt-4o"] = "",
        }).Build();
        var services = new ServiceCollection();
        services.AddHttpClient("aoai").AddPriorityRoutingHandler(config.GetSection("PriorityRouting"));
        using var provider = services.BuildServiceProvider();

        var act = () => provider.GetRequiredService<IOptionsMonitor<PriorityRoutingHandlerOptions>>().Get(PriorityRoutingHandlerNames.OptionsName("aoai"));

        act.Should().Throw<OptionsValidationException>().Which.Message.Should().Contain(
            "Routing.Backends[0].Models['gpt-4o'] must be this backend's deployment or model name, but was ''");
    }
}
