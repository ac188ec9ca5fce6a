using System.Diagnostics;

namespace Polly.PriorityRouting;

/// <summary>
/// What one strategy instance reports to the observable gauges: a snapshot of its backends, taken through the same
/// reads as routing (partitions included).
/// </summary>
internal sealed class PriorityRoutingGaugeSource(BackendPool pool, TimeProvider timeProvider, TagList tags)
{
    public TagList Tags { get; } = tags;

    /// <summary>Gets the backends with a cap on requests in flight: read without a snapshot.</summary>
    public RoutedBackend[] CappedBackends { get; } = [.. pool.Backends.Where(backend => backend.InFlight is not null)];

    public PriorityRoutingSnapshot TakeSnapshot() => PriorityRoutingSnapshot.From(pool, timeProvider.GetUtcNow());
}
