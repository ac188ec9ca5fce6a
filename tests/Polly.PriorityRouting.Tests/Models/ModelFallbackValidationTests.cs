using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Polly.PriorityRouting.Tests.Models;

public class ModelFallbackValidationTests
{
    public static TheoryData<Action<PriorityRoutingStrategyOptions>, string> InvalidChains => new()
    {
        { o => o.ModelFallbacks["gpt-4o"] = ["gpt-4x"], "ModelFallbacks['gpt-4o'][0] names 'gpt-4x', which no backend serves (served: 'gpt-4o', 'gpt-4o-128k', 'gpt-4o-mini')." },
        { o => o.ModelFallbacks["gpt-5"] = ["gpt-4o"], "ModelFallbacks['gpt-5'] names a model no backend serves (served: 'gpt-4o', 'gpt-4o-128k', 'gpt-4o-mini')." },
        { o => o.ModelFallbacks["gpt-4o"] = ["gpt-4o-mini", "gpt-4o"], "ModelFallbacks['gpt-4o'][1] is 'gpt-4o' itself: a model cannot fall back to itself." },
        { o => o.ModelFallbacks["gpt-4o"] = ["gpt-4o-mini", "gpt-4o-mini"], "ModelFallbacks['gpt-4o'][1] lists 'gpt-4o-mini' a second time." },
        { o => o.ModelFallbacks["gpt-4o"] = [], "ModelFallbacks['gpt-4o'] must list at least one fallback model." },
        { o => o.ModelFallbacks["gpt-4o"] = [" gpt-4o-mini"], "ModelFallbacks['gpt-4o'][0] must be a model name, but was ' gpt-4o-mini': it must be non-empty, without white space at either end or control characters." },
        { o => o.ContextWindowFallbacks["gpt-4o"] = ["gpt-4o-256k"], "ContextWindowFallbacks['gpt-4o'][0] names 'gpt-4o-256k', which no backend serves (served: 'gpt-4o', 'gpt-4o-128k', 'gpt-4o-mini')." },
        {
            o =>
            {
                o.ModelFallbacks["gpt-4o"] = ["gpt-4o-mini"];
                o.ModelFallbacks["gpt-4o-mini"] = ["gpt-4o-128k"];
                o.ModelFallbacks["gpt-4o-128k"] = ["gpt-4o"];
            },
            "ModelFallbacks has a cycle: 'gpt-4o' → 'gpt-4o-mini' → 'gpt-4o-128k' → 'gpt-4o'."
        },
    };

    [Theory]
    [MemberData(nameof(InvalidChains))]
    public void Adding_the_strategy_fails_with_a_message_naming_the_field(Action<PriorityRoutingStrategyOptions> breakIt, string expected)
    {
        var options = ValidOptions();
        breakIt(options);

        var act = () => new ResiliencePipelineBuilder<HttpResponseMessage>().AddPriorityRouting(options);

        act.Should().Throw<ValidationException>().Which.Message.Should().Contain(expected);
        PriorityRoutingStrategyOptionsValidator.Validate(options).Should().Equal(expected);
    }

    [Fact]
    public void Chains_of_served_models_are_valid_and_a_backend_without_a_map_serves_every_name()
    {
        var options = ValidOptions();
        options.ModelFallbacks["gpt-4o"] = ["gpt-4o-mini", "gpt-4o-128k"];
        options.ModelFallbacks["gpt-4o-mini"] = ["gpt-4o-128k"];
        options.ContextWindowFallbacks["gpt-4o"] = ["gpt-4o-128k"];
        PriorityRoutingStrategyOptionsValidator.Validate(options).Should().BeEmpty();

        options.Backends.Add(new PriorityBackend { Name = "openai", BaseAddress = new Uri("https://api.openai.example/") });
        options.ModelFallbacks["o3"] = ["o4-mini"];
        PriorityRoutingStrategyOptionsValidator.Validate(options).Should().BeEmpty();
    }

    [Fact]
    public void Both_lists_are_empty_by_default_and_never_null()
    {
        var options = new PriorityRoutingStrategyOptions { ModelFallbacks = null!, ContextWindowFallbacks = null! };

        (options.ModelFallbacks.Count, options.ContextWindowFallbacks.Count).Should().Be((0, 0));
        new PriorityRoutingStrategyOptions().ModelFallbacks.Should().BeEmpty();
    }

    [Fact]
    public void A_host_validating_on_start_names_the_configuration_path_of_a_broken_chain()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["PriorityRouting:Routing:Backends:0:Name"] = "ptu",
            ["PriorityRouting:Routing:Backends:0:BaseAddress"] = "https://ptu.example/",
            ["PriorityRouting:Routing:Backends:0:Models:gpt-4o"] = "gpt-4o-ptu",
            ["PriorityRouting:Routing:Backends:1:Name"] = "mini",
            ["PriorityRouting:Routing:Backends:1:BaseAddress"] = "https://mini.example/",
            ["PriorityRouting:Routing:Backends:1:Models:gpt-4o-mini"] = "mini-deploy",
            ["PriorityRouting:Routing:ModelFallbacks:gpt-4o:0"] = "gpt-4o-mini",
            ["PriorityRouting:Routing:ModelFallbacks:gpt-4o:1"] = "gpt-4o",
            ["PriorityRouting:Routing:ContextWindowFallbacks:gpt-4o:0"] = "gpt-4o-mini",
        }).Build();
        var services = new ServiceCollection();
        services.AddHttpClient("aoai").AddPriorityRoutingHandler(config.GetSection("PriorityRouting"));
        using var provider = services.BuildServiceProvider();

        var act = () => provider.GetRequiredService<IOptionsMonitor<PriorityRoutingHandlerOptions>>().Get(PriorityRoutingHandlerNames.OptionsName("aoai"));

        act.Should().Throw<OptionsValidationException>().Which.Failures.Should().Contain(
            "HttpClient 'aoai': Routing.ModelFallbacks['gpt-4o'][1] is 'gpt-4o' itself: a model cannot fall back to itself.");
    }

    private static PriorityRoutingStrategyOptions ValidOptions() => new()
    {
        Backends =
        [
            new PriorityBackend { Name = "a", BaseAddress = new Uri("https://a.example/"), Models = { ["gpt-4o"] = "gpt-4o-ptu" } },
            new PriorityBackend { Name = "b", BaseAddress = new Uri("https://b.example/"), Models = { ["gpt-4o-mini"] = "mini" } },
            new PriorityBackend { Name = "c", BaseAddress = new Uri("https://c.example/"), Priority = 2, Models = { ["gpt-4o-128k"] = "big" } },
        ],
    };
}
