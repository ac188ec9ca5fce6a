using System.Text;
using Microsoft.Extensions.Configuration;

namespace Polly.PriorityRouting.Tests.DependencyInjection;

public class ConfigurationBindingCheckerTests
{
    [Fact]
    public void A_valid_configuration_has_no_errors_and_binds()
    {
        var section = Json("""
            {
              "routing": {
                "backends": [ { "name": "a", "baseAddress": "https://a/", "PRIORITY": "2", "headers": { "api-key": "k", "x-any": "" } } ],
                "MaxAttempts": null,
                "OutlierEjection": { "Enabled": "false", "BaseEjectionTime": "00:00:05" }
              },
              "Retry": { "BackoffType": "linear", "MaxDelay": "00:00:10", "Name": "r" },
              "AttemptTimeout": { }
            }
            """);

        ConfigurationBindingChecker.Check(section, typeof(PriorityRoutingHandlerOptions)).Should().BeEmpty();
        var options = new PriorityRoutingHandlerOptions();
        section.Bind(options, binder => binder.ErrorOnUnknownConfiguration = true);
        options.Routing.Backends.Single().Priority.Should().Be(2);
        options.Routing.OutlierEjection.Enabled.Should().BeFalse();
    }

    [Theory]
    [InlineData("Priority", "Priority")]
    [InlineData("Prioirty", "Priority")]
    [InlineData("Prio", null)]
    [InlineData("weigth", "Weight")]
    [InlineData("Nam", "Name")]
    [InlineData("BaseAdress", "BaseAddress")]
    [InlineData("Base", null)]
    [InlineData("Wieght", "Weight")]
    [InlineData("PriorityX", "Priority")]
    [InlineData("Headerz", "Headers")]
    [InlineData("BearerTokenProvidr", "BearerTokenProvider")]
    [InlineData("Nmae", "Name")]
    [InlineData("Foo", null)]
    public void An_unknown_key_is_offered_the_nearest_known_key_within_two_edits_and_a_third_of_its_length(string key, string? nearest)
    {
        var section = Json($$"""{ "Routing": { "Backends": [ { "{{key}}": "1" } ] } }""");

        var errors = ConfigurationBindingChecker.Check(section, typeof(PriorityRoutingHandlerOptions));

        if (key == nearest)
        {
            errors.Should().BeEmpty();
        }
        else if (nearest is null)
        {
            errors.Should().Equal($"Routing.Backends[0].{key} is not a known setting.");
        }
        else
        {
            errors.Should().Equal($"Routing.Backends[0].{key} is not a known setting (did you mean {nearest}?).");
        }
    }

    [Fact]
    public void Keys_only_code_can_set_are_reported_not_bound()
    {
        var section = Json("""{ "Routing": { "ShouldHandle": "x", "LoggerFactory": { "a": "b" } }, "Retry": { "OnRetry": "x" } }""");

        // Configuration orders keys alphabetically, and so do the errors.
        ConfigurationBindingChecker.Check(section, typeof(PriorityRoutingHandlerOptions)).Should().Equal(
            "Retry.OnRetry cannot be set from configuration; set it in code.",
            "Routing.LoggerFactory cannot be set from configuration; set it in code.",
            "Routing.ShouldHandle cannot be set from configuration; set it in code.");
    }

    [Fact]
    public void An_empty_value_clears_as_the_binder_does()
    {
        var section = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Routing:MaxAttempts"] = string.Empty,
            ["Routing:Backends:0:BaseAddress"] = "https://a/",
            ["Routing:Backends:0:Name"] = string.Empty,
        }).Build();

        ConfigurationBindingChecker.Check(section, typeof(PriorityRoutingHandlerOptions)).Should().BeEmpty();
        var options = new PriorityRoutingHandlerOptions();
        section.Bind(options, binder => binder.ErrorOnUnknownConfiguration = true);
        options.Routing.MaxAttempts.Should().BeNull();
    }

    [Fact]
    public void An_address_that_does_not_convert_is_shown_without_its_query()
    {
        var section = Json("""{ "Routing": { "Backends": [ { "BaseAddress": "http://[::1?code=sekret" } ] } }""");

        ConfigurationBindingChecker.Check(section, typeof(PriorityRoutingHandlerOptions)).Should().Equal(
            "Routing.Backends[0].BaseAddress must be a URI, but was 'http://[::1?…'.");
    }

    [Fact]
    public void The_affinity_id_extractor_and_store_are_code_only_and_binding_the_rest_keeps_them()
    {
        var code = Json("""{ "Routing": { "Affinity": { "IdExtractor": "Custom", "Store": { "a": "b" } } } }""");
        var bound = Json("""{ "Routing": { "Affinity": { "Enabled": "true", "ResponseLifetime": "1.00:00:00" } } }""");

        ConfigurationBindingChecker.Check(code, typeof(PriorityRoutingHandlerOptions)).Should().Equal(
            "Routing.Affinity.IdExtractor cannot be set from configuration; set it in code.",
            "Routing.Affinity.Store cannot be set from configuration; set it in code.");
        ConfigurationBindingChecker.Check(bound, typeof(PriorityRoutingHandlerOptions)).Should().BeEmpty();
        var options = new PriorityRoutingHandlerOptions();
        bound.Bind(options, binder => binder.ErrorOnUnknownConfiguration = true);
        options.Routing.Affinity.ResponseLifetime.Should().Be(TimeSpan.FromDays(1));
        options.Routing.Affinity.IdExtractor.Should().BeSameAs(OpenAIAffinityIdExtractor.Instance);
    }

    private static IConfiguration Json(string json)
        => new ConfigurationBuilder().AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(json))).Build();
}
