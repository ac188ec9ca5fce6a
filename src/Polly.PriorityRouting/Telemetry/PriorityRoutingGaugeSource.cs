using System.Diagnostics;

namespace Polly.PriorityRouting;

/// <summary>
/// What one strategy instance reports to the observable gauges: its backends' state, read from the store.
/// </summary>
internal sealed class PriorityRoutingGaugeSource(BackendSelector selector, TimeProvider timeProvider, TagList tags)
{
    public TagList Tags { get; } = tags;

    public IEnumerable<(int Priority, int Unavailable)> CountUnavailableByTier()
    {
        var now = timeProvider.GetUtcNow();
        return selector.Backends
            .GroupBy(backend => backend.Priority)
            .Select(tier => (tier.Key, tier.Count(backend => !selector.IsAvailable(backend, now))));
    }

    public TimeSpan TimeUntilAvailable() => selector.GetExhaustion(timeProvider.GetUtcNow()).RetryAfter;
}
