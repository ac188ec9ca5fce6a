using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Polly.PriorityRouting;

/// <summary>
/// Healthy while the best tier has a backend in rotation; Degraded when the whole best tier is out (traffic spills to
/// lower tiers); Unhealthy when every backend is out.
/// </summary>
internal sealed class PriorityRoutingHealthCheck(string clientName, PriorityRoutingSnapshotProvider snapshots) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var snapshot = snapshots.GetSnapshot(clientName);
        var data = snapshot.Backends.ToDictionary(backend => backend.Name, backend => (object)backend.ToString());
        var available = snapshot.Backends.Count(backend => backend.IsAvailable);
        var summary = $"{available} of {snapshot.Backends.Count} backends of '{clientName}' available";

        var result = !snapshot.IsAnyAvailable
            ? new HealthCheckResult(
                context.Registration.FailureStatus,
                FormattableString.Invariant($"{summary}; the soonest returns in {snapshot.TimeUntilAnyAvailable.TotalSeconds:0.###} s."),
                data: data)
            : !snapshot.IsTopTierAvailable
                ? HealthCheckResult.Degraded($"{summary}; the priority {snapshot.Backends[0].Priority} tier is unavailable.", data: data)
                : HealthCheckResult.Healthy($"{summary}.", data);
        return Task.FromResult(result);
    }
}
