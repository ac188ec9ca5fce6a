namespace PriorityRouting.Simulation;

/// <summary>
/// One latency run: the time to first byte seen by callers, and how much traffic the slow backend kept.
/// </summary>
/// <param name="Mode">The selection mode.</param>
/// <param name="P50">Median latency, in milliseconds.</param>
/// <param name="P95">95th percentile, in milliseconds.</param>
/// <param name="P99">99th percentile, in milliseconds.</param>
/// <param name="Mean">Mean latency, in milliseconds.</param>
/// <param name="SlowShare">Share of requests sent to the slow backend while it was slow.</param>
/// <param name="RecoveredShares">
/// After the slow backend turned fast: its share of requests 1–100, 101–200 and 201–300 (a fair share is 1/3).
/// </param>
public sealed record LatencyResult(string Mode, double P50, double P95, double P99, double Mean, double SlowShare, IReadOnlyList<double> RecoveredShares);
