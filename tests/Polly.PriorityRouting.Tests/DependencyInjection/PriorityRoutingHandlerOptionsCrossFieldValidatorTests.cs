using System.Text;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.DependencyInjection;

public class PriorityRoutingHandlerOptionsCrossFieldValidatorTests
{
    [Theory]
    [InlineData("""{ "Routing": { "Backends": [ { "BaseAddress": "https://a/" } ], "MaxCooldown": "2.00:00:00" } }""", "Routing.MaxCooldown")]
    [InlineData("""{ "Routing": { "Backends": [ { "BaseAddress": "https://a/" } ], "MaxCooldown": "3.00:00:00", "DefaultCooldown": "2.00:00:00" } }""", "Routing.DefaultCooldown")]
    public async Task A_cooldown_the_pipeline_rejects_fails_at_host_start_naming_the_field(string json, string field)
    {
        // Defect: PriorityRoutingStrategyOptionsValidator.Validate (PriorityRoutingStrategyOptionsValidator.cs:20-33) checks
        // only the lower bounds; the [Range(0, 1 day)] upper bound is enforced by Polly's AddStrategy when the pipeline is
        // built, i.e. the host starts and the first request throws a ValidationException.
        using var host = HostWithSection(json);

        Exception? startFailure = null;
        try
        {
            await host.StartAsync();
            await host.StopAsync();
        }
        catch (OptionsValidationException e)
        {
            startFailure = e;
        }

        // What a user meets today when the host started: the first request fails.
        Exception? requestFailure = null;
        if (startFailure is null)
        {
            try
            {
                using var client = host.Services.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                (await client.GetAsync("http://placeholder/", cts.Token)).Dispose();
            }
            catch (Exception e)
            {
                requestFailure = e;
            }
        }

        startFailure.Should().NotBeNull(
            "a configuration the pipeline cannot be built with must fail at start; instead the first request threw: {0}",
            requestFailure?.GetType().Name + ": " + requestFailure?.Message);
        startFailure!.Message.Should().Contain(field);
    }

    [Fact]
    public async Task A_first_byte_timeout_longer_than_the_total_timeout_fails_at_host_start()
    {
        // Defect: PriorityRoutingHandlerOptionsCrossFieldValidator (DependencyInjection/PriorityRoutingHandlerOptionsCrossFieldValidator.cs:23-29)
        // compares only AttemptTimeout with TotalRequestTimeout: a FirstByteTimeout beyond it never fires (the total
        // timeout cancels the wait as the caller's cancellation), so a backend that stalls after its headers is never failed over nor marked.
        using var host = HostWithRouting(""" "FirstByteTimeout": "00:06:00" """);

        var act = () => host.StartAsync();

        (await act.Should().ThrowAsync<OptionsValidationException>()).Which.Message.Should().Be(ClientMessages.Of(
            "aoai", "Routing.FirstByteTimeout (00:06:00) must be less than TotalRequestTimeout.Timeout (00:05:00)."));
    }

    [Fact]
    public async Task A_queue_wait_bound_from_configuration_as_long_as_the_total_timeout_fails_at_host_start()
    {
        using var host = HostWithRouting(""" "MaxQueueWait": "00:05:00" """);

        var act = () => host.StartAsync();

        (await act.Should().ThrowAsync<OptionsValidationException>()).Which.Message.Should().Be(ClientMessages.Of(
            "aoai", "Routing.MaxQueueWait (00:05:00) must be less than TotalRequestTimeout.Timeout (00:05:00)."));
    }

    [Fact]
    public async Task A_queue_wait_bound_from_configuration_below_the_total_timeout_starts()
    {
        using var host = HostWithRouting(""" "MaxQueueWait": "00:00:10" """);

        await host.StartAsync();

        host.Services.GetRequiredService<IOptionsMonitor<PriorityRoutingHandlerOptions>>().Get(PriorityRoutingHandlerNames.OptionsName("aoai")).Routing.MaxQueueWait.Should().Be(TimeSpan.FromSeconds(10));
        await host.StopAsync();
    }

    [Fact]
    public async Task A_background_headroom_from_configuration_binds_and_one_of_a_whole_budget_fails_at_host_start()
    {
        using (var host = HostWithRouting(""" "BackgroundHeadroom": 0.35 """))
        {
            await host.StartAsync();
            host.Services.GetRequiredService<IOptionsMonitor<PriorityRoutingHandlerOptions>>().Get(PriorityRoutingHandlerNames.OptionsName("aoai")).Routing.BackgroundHeadroom.Should().Be(0.35);
            await host.StopAsync();
        }

        using var invalid = HostWithRouting(""" "BackgroundHeadroom": 1 """);

        var act = () => invalid.StartAsync();

        (await act.Should().ThrowAsync<OptionsValidationException>()).Which.Message.Should().Contain(
            "Routing.BackgroundHeadroom must be at least 0 and less than 1 (a share of each budget), but was 1.");
    }

    /// <summary>A host whose client "aoai" has one backend and the given extra <c>Routing</c> settings.</summary>
    private static IHost HostWithRouting(string routingSettings)
        => HostWithSection("""{ "Routing": { "Backends": [ { "BaseAddress": "https://a/" } ], """ + routingSettings + " } }");

    private static IHost HostWithSection(string json)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes("{\"PriorityRouting\":" + json + "}")));
        builder.Services.AddHttpClient("aoai").AddPriorityRoutingHandler(builder.Configuration.GetSection("PriorityRouting"));
        return builder.Build();
    }
}
