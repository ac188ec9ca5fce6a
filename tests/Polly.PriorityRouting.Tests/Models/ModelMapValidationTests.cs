using System.ComponentModel.DataAnnotations;

namespace Polly.PriorityRouting.Tests.Models;

public class ModelMapValidationTests
{
    [Fact]
    public void Names_on_either_side_must_be_names_and_the_message_names_the_field()
    {
        var backend = new PriorityBackend { BaseAddress = new Uri("https://a.example/") };
        backend.Models[""] = "x";
        backend.Models[" gpt-4o"] = "x";
        backend.Models["o3"] = "";
        backend.Models["o4"] = "o4-mini ";
        backend.Models["o5"] = "o5\nmini";

        var errors = PriorityRoutingStrategyOptionsValidator.Validate(new PriorityRoutingStrategyOptions { Backends = [backend] }, "Routing.");

        const string Rule = ": it must be non-empty, without white space at either end or control characters.";
        errors.Should().Equal(
            "Routing.Backends[0].Models has an invalid model name ''" + Rule,
            "Routing.Backends[0].Models has an invalid model name ' gpt-4o'" + Rule,
            "Routing.Backends[0].Models['o3'] must be this backend's deployment or model name, but was ''" + Rule,
            "Routing.Backends[0].Models['o4'] must be this backend's deployment or model name, but was 'o4-mini '" + Rule,
            "Routing.Backends[0].Models['o5'] must be this backend's deployment or model name, but was 'o5\nmini'" + Rule);
    }

    [Fact]
    public void Aliases_and_names_with_slashes_or_colons_are_valid()
    {
        var backend = new PriorityBackend { BaseAddress = new Uri("https://a.example/") };
        backend.Models["gpt-4o"] = "gpt-4o-2024-11-20";
        backend.Models["gpt-4o-2024-11-20"] = "gpt-4o-2024-11-20";
        backend.Models["llama"] = "meta-llama/Llama-3.3-70B-Instruct";
        backend.Models["my-ft"] = "ft:gpt-4o-mini:org:custom:abc123";

        var act = () => new ResiliencePipelineBuilder<HttpResponseMessage>().AddPriorityRouting(new PriorityRoutingStrategyOptions { Backends = [backend] });

        act.Should().NotThrow<ValidationException>();
    }

    [Fact]
    public void A_null_map_reads_as_empty()
        => new PriorityBackend { Models = null! }.Models.Should().BeEmpty();
}
