namespace Polly.PriorityRouting;

/// <summary>
/// How the strategy chooses among the available backends of one priority tier.
/// </summary>
/// <remarks>
/// The mode never changes which tier serves a request: a lower tier is used only when the better tiers have no
/// available backend left.
/// </remarks>
public enum BackendSelectionMode
{
    /// <summary>Weighted random by <see cref="PriorityBackend.Weight"/>: the default.</summary>
    WeightedRandom = 0,

    /// <summary>
    /// Weighted random, with each backend's weight scaled by how fast its first response byte arrives compared with
    /// the fastest backend of the tier: a decaying average of the time to first byte, measured per pipeline, in this
    /// process, robust to single samples (the first, which pays the connection's set-up, is discarded; one outlier
    /// changes nothing). Backends within 25 % of the fastest count as equally fast; a backend twice as slow keeps 39 %
    /// of its weight; none keeps less than a twentieth, so a slow backend still gets enough requests to show when it
    /// recovers.
    /// </summary>
    LatencyAware = 1,
}
