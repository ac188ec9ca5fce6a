namespace Polly.PriorityRouting.Tests;

public class PriorityBackendTests
{
    [Fact]
    public void Has_documented_defaults()
    {
        var backend = new PriorityBackend();

        backend.Priority.Should().Be(1);
        backend.Weight.Should().Be(1);
        backend.Name.Should().BeNull();
        backend.BaseAddress.Should().BeNull();
        backend.Headers.Should().BeEmpty();
    }

    [Fact]
    public void Headers_are_never_null_and_case_insensitive()
    {
        var backend = new PriorityBackend { Headers = null! };

        backend.Headers.Should().NotBeNull();
        backend.Headers["API-KEY"] = "x";
        backend.Headers.ContainsKey("api-key").Should().BeTrue();
    }

    [Fact]
    public void Default_name_is_the_address_without_its_query()
    {
        var backend = new PriorityBackend { BaseAddress = new Uri("https://east.example.com/openai/?code=secret") };

        backend.GetEffectiveName().Should().Be("https://east.example.com/openai/");
        backend.ToString().Should().Be("https://east.example.com/openai/");
    }

    [Fact]
    public void ToString_never_shows_header_values()
    {
        var backend = new PriorityBackend { Name = "ptu", BaseAddress = new Uri("https://a.example/") };
        backend.Headers["api-key"] = "super-secret";

        backend.ToString().Should().Be("ptu");
    }
}
