using System.Collections.Concurrent;
using Polly.Telemetry;

namespace Polly.PriorityRouting.Tests.Support;

internal sealed class RecordingTelemetryListener : TelemetryListener
{
    public ConcurrentQueue<(string Event, ResilienceEventSeverity Severity, string? Strategy, object? Arguments)> Events { get; } = new();

    public override void Write<TResult, TArgs>(in TelemetryEventArguments<TResult, TArgs> args)
        => Events.Enqueue((args.Event.EventName, args.Event.Severity, args.Source.StrategyName, args.Arguments));
}
