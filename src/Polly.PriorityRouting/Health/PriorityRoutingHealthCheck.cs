using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Polly.PriorityRouting;

/// <summary>
/// Healthy while the best tier has a backend in rotation for every partition; Degraded when the whole best tier is out
/// (traffic spills to lower tiers), as a whole or for one throttle partition; Unhealthy (the registration's failure
/// status) when every backend is out, as a whole or for one partition — requests of that partition get the exhausted
/// answer.
/// </summary>
internal sealed class PriorityRoutingHealthCheck(string clientName, PriorityRoutingSnapshotProvider snapshots) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var snapshot = snapshots.GetSnapshot(clientName);
        var data = snapshot.Backends.ToDictionary(backend => backend.Name, backend => (object)backend.ToString());
        var available = snapshot.Backends.Count(backend => backend.IsAvailable);
        var summary = $"{available} of {snapshot.Backends.Count} backends of '{clientName}' available";
        var tier = snapshot.Backends.Count > 0 ? snapshot.Backends[0].Priority : 0;
        var partitionsOut = snapshot.Partitions.Where(partition => !snapshot.IsAnyAvailableFor(partition)).ToArray();
        var partitionsSpilling = snapshot.Partitions.Where(partition => !snapshot.IsTopTierAvailableFor(partition)).Except(partitionsOut).ToArray();
        var modelsOut = snapshot.Models.Where(model => !model.IsAvailable).ToArray();
        var modelsSpilling = snapshot.Models.Where(model => model.IsAvailable && !model.IsTopTierAvailable).Select(model => model.Name).ToArray();

        HealthCheckResult result;
        if (!snapshot.IsAnyAvailable)
        {
            result = new HealthCheckResult(
                context.Registration.FailureStatus,
                FormattableString.Invariant($"{summary}; the soonest returns in {snapshot.TimeUntilAnyAvailable.TotalSeconds:0.###} s."),
                data: data);
        }
        else if (partitionsOut.Length > 0)
        {
            var soonest = partitionsOut.Min(snapshot.TimeUntilAnyAvailableFor);
            result = new HealthCheckResult(
                context.Registration.FailureStatus,
                FormattableString.Invariant(
                    $"{summary}; no backend is available for {Describe(partitionsOut)}; the soonest returns in {soonest.TotalSeconds:0.###} s."),
                data: data);
        }
        else if (modelsOut.Length > 0)
        {
            // With model maps a model's throttles sit under each backend's own deployment name: only its backends count.
            var soonest = modelsOut.Min(model => model.TimeUntilAvailable);
            result = new HealthCheckResult(
                context.Registration.FailureStatus,
                FormattableString.Invariant(
                    $"{summary}; no backend is available for {Describe("model", [.. modelsOut.Select(model => model.Name)])}; the soonest returns in {soonest.TotalSeconds:0.###} s."),
                data: data);
        }
        else if (!snapshot.IsTopTierAvailable)
        {
            result = HealthCheckResult.Degraded($"{summary}; the priority {tier} tier is unavailable.", data: data);
        }
        else if (partitionsSpilling.Length > 0)
        {
            result = HealthCheckResult.Degraded($"{summary}; the priority {tier} tier is unavailable for {Describe(partitionsSpilling)}.", data: data);
        }
        else if (modelsSpilling.Length > 0)
        {
            result = HealthCheckResult.Degraded($"{summary}; the best tier serving {Describe("model", modelsSpilling)} is unavailable.", data: data);
        }
        else
        {
            result = HealthCheckResult.Healthy($"{summary}.", data);
        }

        return Task.FromResult(result);
    }

    private static string Describe(string[] partitions) => Describe("partition", partitions);

    private static string Describe(string kind, string[] names)
        => kind + (names.Length == 1 ? " " : "s ") + string.Join(", ", names.Select(name => $"'{name}'"));
}
