using System.ComponentModel.DataAnnotations;

namespace Polly.PriorityRouting.Tests;

public class PriorityRoutingStrategyOptionsValidatorTests
{
    public static TheoryData<Action<PriorityRoutingStrategyOptions>, string> InvalidOptions => new()
    {
        { o => o.Backends.Clear(), "Backends must contain at least one backend." },
        { o => o.Backends = null!, "Backends must contain at least one backend." },
        { o => o.Backends[1] = null!, "Backends[1] must not be null." },
        { o => o.Backends[1].BaseAddress = null, "Backends[1].BaseAddress is required." },
        { o => o.Backends[1].BaseAddress = new Uri("/relative", UriKind.Relative), "Backends[1].BaseAddress must be an absolute URI, but was relative." },
        { o => o.Backends[0].BaseAddress = new Uri("ftp://files.example/"), "Backends[0].BaseAddress must use the http or https scheme, but used 'ftp'." },
        { o => o.Backends[1].Priority = 0, "Backends[1].Priority must be at least 1, but was 0." },
        { o => { o.Backends[0].Drain = true; o.Backends[1].Drain = true; }, "Backends are all drained (Drain = true); at least one backend must take new requests." },
        { o => o.Backends[0].Weight = 0, "Backends[0].Weight must be between 1 and 1000, but was 0." },
        { o => o.Backends[0].Weight = 1001, "Backends[0].Weight must be between 1 and 1000, but was 1001." },
        { o => o.Backends[0].TokensPerMinute = 0, "Backends[0].TokensPerMinute must be at least 1 when set, but was 0." },
        { o => o.Backends[1].RequestsPerMinute = -5, "Backends[1].RequestsPerMinute must be at least 1 when set, but was -5." },
        { o => o.Backends[1].MaxConcurrentRequests = 0, "Backends[1].MaxConcurrentRequests must be at least 1 when set, but was 0." },
        { o => { o.Backends[1].TokensPerMinute = 1000; o.TokenBudgets = false; }, "Backends[1].TokensPerMinute is a declared budget: it needs TokenBudgets on." },
        { o => { o.Backends[0].RequestsPerMinute = 60; o.TokenBudgets = false; }, "Backends[0].RequestsPerMinute is a declared budget: it needs TokenBudgets on." },
        { o => o.Backends[1].Name = "a", "Backends[1].Name 'a' is already used by Backends[0]; backend names must be unique." },
        { o => o.Backends[1].Headers["bad header"] = "x", "Backends[1].Headers has an invalid header name 'bad header'." },
        { o => o.Backends[1].Headers["api-key"] = "x\r\ny", "Backends[1].Headers['api-key'] must be a single-line value." },
        { o => o.DefaultCooldown = TimeSpan.FromSeconds(-1), "DefaultCooldown must not be negative, but was -00:00:01." },
        { o => o.MaxCooldown = TimeSpan.FromSeconds(-1), "MaxCooldown must not be negative, but was -00:00:01." },
        { o => o.DefaultCooldown = TimeSpan.FromMinutes(6), "DefaultCooldown (00:06:00) must not exceed MaxCooldown (00:05:00)." },
        { o => o.MaxAttempts = 0, "MaxAttempts must be at least 1 when set, but was 0." },
        { o => o.ShouldHandle = null!, "ShouldHandle is required." },
        { o => o.OutlierEjection = null!, "OutlierEjection is required." },
        { o => o.OutlierEjection.ConsecutiveFailures = 0, "OutlierEjection.ConsecutiveFailures must be between 1 and 1000, but was 0." },
        { o => o.OutlierEjection.BaseEjectionTime = TimeSpan.Zero, "OutlierEjection.BaseEjectionTime must be positive, but was 00:00:00." },
        { o => o.OutlierEjection.MaxEjectionTime = TimeSpan.FromSeconds(10), "OutlierEjection.MaxEjectionTime (00:00:10) must not be less than OutlierEjection.BaseEjectionTime (00:00:30)." },
        { o => o.FirstByteTimeout = TimeSpan.Zero, "FirstByteTimeout must be between 1 ms and one day when set, but was 00:00:00." },
        { o => o.StreamStallTimeout = TimeSpan.FromDays(2), "StreamStallTimeout must be between 1 ms and one day when set, but was 2.00:00:00." },
        { o => o.SelectionMode = (BackendSelectionMode)7, "SelectionMode must be WeightedRandom or LatencyAware, but was 7." },
        { o => o.Affinity = null!, "Affinity is required." },
        { o => o.Affinity.IdExtractor = null!, "Affinity.IdExtractor is required." },
        { o => o.Affinity.ResponseLifetime = TimeSpan.Zero, "Affinity.ResponseLifetime must be between 00:00:01 and 3650.00:00:00, but was 00:00:00." },
        { o => o.Affinity.ResourceLifetime = TimeSpan.FromDays(3651), "Affinity.ResourceLifetime must be between 00:00:01 and 3650.00:00:00, but was 3651.00:00:00." },
        { o => o.Affinity.StickyLifetime = TimeSpan.FromDays(2), "Affinity.StickyLifetime must be between 00:00:01 and 1.00:00:00, but was 2.00:00:00." },
        { o => o.MaxQueueWait = TimeSpan.Zero, "MaxQueueWait must be between 1 ms and one day when set, but was 00:00:00." },
        { o => { o.MaxQueueWait = TimeSpan.FromSeconds(10); o.TokenBudgets = false; }, "MaxQueueWait waits for room the token budget view promises: it requires TokenBudgets to be true." },
        { o => o.BackgroundHeadroom = 1, "BackgroundHeadroom must be at least 0 and less than 1 (a share of each budget), but was 1." },
        { o => o.BackgroundHeadroom = -0.1, "BackgroundHeadroom must be at least 0 and less than 1 (a share of each budget), but was -0.1." },
        { o => o.BackgroundHeadroom = double.NaN, "BackgroundHeadroom must be at least 0 and less than 1 (a share of each budget), but was NaN." },
    };

    [Theory]
    [MemberData(nameof(InvalidOptions))]
    public void Adding_the_strategy_fails_with_a_message_naming_the_field(Action<PriorityRoutingStrategyOptions> breakIt, string expected)
    {
        var options = ValidOptions();
        breakIt(options);

        var act = () => new ResiliencePipelineBuilder<HttpResponseMessage>().AddPriorityRouting(options);

        act.Should().Throw<ValidationException>().Which.Message.Should().Contain(expected);
        PriorityRoutingStrategyOptionsValidator.Validate(options).Should().Equal(expected);
    }

    [Fact]
    public void Reports_every_error_with_the_given_prefix()
    {
        var options = ValidOptions();
        options.Backends[0].Weight = 0;
        options.Backends[1].Priority = -3;
        options.MaxAttempts = -1;

        PriorityRoutingStrategyOptionsValidator.Validate(options, "Routing.").Should().Equal(
            "Routing.Backends[0].Weight must be between 1 and 1000, but was 0.",
            "Routing.Backends[1].Priority must be at least 1, but was -3.",
            "Routing.MaxAttempts must be at least 1 when set, but was -1.");
    }

    [Fact]
    public void Default_names_collide_when_two_backends_share_an_address()
    {
        var options = ValidOptions();
        options.Backends[0].Name = null;
        options.Backends[1].Name = null;
        options.Backends[0].BaseAddress = new Uri("https://same.example/x/?key=1");
        options.Backends[1].BaseAddress = new Uri("https://same.example/x/?key=2");

        PriorityRoutingStrategyOptionsValidator.Validate(options).Should().Equal(
            "Backends[1].Name 'https://same.example/x/' is already used by Backends[0]; backend names must be unique.");
    }

    [Fact]
    public void Header_values_never_appear_in_messages()
    {
        var options = ValidOptions();
        options.Backends[0].Headers["api-key"] = "super-secret\n";

        var act = () => new ResiliencePipelineBuilder<HttpResponseMessage>().AddPriorityRouting(options);

        act.Should().Throw<ValidationException>().Which.Message.Should().NotContain("super-secret");
    }

    [Fact]
    public void Valid_options_pass()
        => PriorityRoutingStrategyOptionsValidator.Validate(ValidOptions()).Should().BeEmpty();

    private static PriorityRoutingStrategyOptions ValidOptions() => new()
    {
        Backends =
        [
            new PriorityBackend { Name = "a", BaseAddress = new Uri("https://a.example/") },
            new PriorityBackend { Name = "b", BaseAddress = new Uri("https://b.example/"), Priority = 2 },
        ],
    };
}
