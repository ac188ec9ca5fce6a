using Microsoft.Extensions.DependencyInjection;
using Polly.Telemetry;

namespace Polly.PriorityRouting.Tests.DependencyInjection;

public class HandlerTelemetrySeverityTests
{
    [Fact]
    public void The_users_severity_provider_keeps_the_last_word_and_sees_the_handlers_severity()
    {
        ResilienceEventSeverity? seen = null;
        var services = new ServiceCollection();
        services.AddResiliencePipelineRegistry<string>();
        services.Configure<TelemetryOptions>(o => o.SeverityProvider = args =>
        {
            seen = args.Event.Severity;
            return ResilienceEventSeverity.Critical;
        });
        using var provider = services.BuildServiceProvider();
        var telemetry = HandlerTelemetrySeverity.Configure(new PriorityRoutingHandlerOptions(), provider);
        var context = ResilienceContextPool.Shared.Get();

        var severity = telemetry.SeverityProvider!(new SeverityProviderArguments(
            new ResilienceTelemetrySource("aoai-priority-routing", null, PriorityRoutingConstants.StrategyType),
            new ResilienceEvent(ResilienceEventSeverity.Warning, PriorityRoutingConstants.OnBackendUnavailableEvent),
            context));

        seen.Should().Be(ResilienceEventSeverity.Information, "the strategy's own log carries the Warning");
        severity.Should().Be(ResilienceEventSeverity.Critical);
        ResilienceContextPool.Shared.Return(context);
    }

    [Theory]
    [InlineData("Retry", "OnRetry", true, ResilienceEventSeverity.Information)]
    [InlineData("Retry", "ExecutionAttempt", true, ResilienceEventSeverity.Information)]
    [InlineData("Retry", "ExecutionAttempt", false, ResilienceEventSeverity.Error)]
    [InlineData("AttemptTimeout", "OnTimeout", false, ResilienceEventSeverity.Information)]
    [InlineData("TotalRequestTimeout", "OnTimeout", false, ResilienceEventSeverity.Error)]
    public void Polly_events_the_handler_absorbs_are_information_and_others_keep_their_severity(
        string strategy, string eventName, bool retriedTheExhaustedAnswer, ResilienceEventSeverity expected)
    {
        using var provider = new ServiceCollection().BuildServiceProvider();
        var telemetry = HandlerTelemetrySeverity.Configure(new PriorityRoutingHandlerOptions(), provider);
        var context = ResilienceContextPool.Shared.Get();
        using var answer = new HttpResponseMessage(System.Net.HttpStatusCode.TooManyRequests);
        if (retriedTheExhaustedAnswer)
        {
            answer.Headers.Add(PriorityRoutingConstants.ExhaustedHeader, "true");
        }

        HandlerTelemetrySeverity.NoteRetriedOutcome(context, Outcome.FromResult(answer));

        telemetry.SeverityProvider!(new SeverityProviderArguments(
            new ResilienceTelemetrySource("aoai-priority-routing", null, strategy),
            new ResilienceEvent(ResilienceEventSeverity.Error, eventName),
            context)).Should().Be(expected);
        ResilienceContextPool.Shared.Return(context);
    }
}
