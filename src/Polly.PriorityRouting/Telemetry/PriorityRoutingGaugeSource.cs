using System.Diagnostics;

namespace Polly.PriorityRouting;

/// <summary>
/// What one strategy instance reports to the observable gauges: a snapshot of its backends, taken through the same
/// reads as routing (partitions included).
/// </summary>
internal sealed class PriorityRoutingGaugeSource(BackendPool pool, TimeProvider timeProvider, TagList tags)
{
    public TagList Tags { get; } = tags;

    public PriorityRoutingSnapshot TakeSnapshot() => PriorityRoutingSnapshot.From(pool, timeProvider.GetUtcNow());
}
