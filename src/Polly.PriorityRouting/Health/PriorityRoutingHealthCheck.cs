using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Polly.PriorityRouting;

/// <summary>
/// Healthy while the best tier has a backend in rotation for every partition; Degraded when the whole best tier is out
/// (traffic spills to lower tiers), as a whole or for one throttle partition; Unhealthy (the registration's failure
/// status) when every backend is out, as a whole or for one partition — requests of that partition get the exhausted
/// answer. Drained backends count for none of these: the best tier is the best of those that take new requests. A
/// rejected configuration reload makes a Healthy client Degraded: routing runs on the last good configuration.
/// </summary>
internal sealed class PriorityRoutingHealthCheck(string clientName, PriorityRoutingSnapshotProvider snapshots) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var snapshot = snapshots.GetSnapshot(clientName);
        var result = Assess(snapshot, clientName, context.Registration.FailureStatus);
        if (snapshot.RejectedReload.Count == 0)
        {
            return Task.FromResult(result);
        }

        // Loud but harmless: the operator's latest configuration is not in use, while routing goes on with the last good one.
        var rejected = string.Join(" ", snapshot.RejectedReload);
        var data = new Dictionary<string, object>(result.Data) { ["rejectedReload"] = rejected };
        var status = result.Status == HealthStatus.Healthy ? HealthStatus.Degraded : result.Status;
        var description = snapshot.Backends.Count == 0
            ? $"The configuration of '{clientName}' is invalid and no valid one was ever loaded: {rejected}"
            : $"{result.Description} A configuration reload was rejected; routing keeps the last good configuration: {rejected}";
        return Task.FromResult(new HealthCheckResult(snapshot.Backends.Count == 0 ? context.Registration.FailureStatus : status, description, data: data));
    }

    private static HealthCheckResult Assess(PriorityRoutingSnapshot snapshot, string clientName, HealthStatus failureStatus)
    {
        var data = snapshot.Backends.ToDictionary(backend => backend.Name, backend => (object)backend.ToString());
        var available = snapshot.Backends.Count(backend => backend.IsAvailable);
        var drained = snapshot.Backends.Count(backend => backend.IsDrained);
        var summary = $"{available} of {snapshot.Backends.Count} backends of '{clientName}' available" + (drained > 0 ? $" ({drained} drained)" : string.Empty);
        var tier = snapshot.TopTierPriority;
        var partitionsOut = snapshot.Partitions.Where(partition => !snapshot.IsAnyAvailableFor(partition)).ToArray();
        var partitionsSpilling = snapshot.Partitions.Where(partition => !snapshot.IsTopTierAvailableFor(partition)).Except(partitionsOut).ToArray();
        var modelsOut = snapshot.Models.Where(model => !model.IsAvailable).ToArray();
        var modelsSpilling = snapshot.Models.Where(model => model.IsAvailable && !model.IsTopTierAvailable).Select(model => model.Name).ToArray();

        if (!snapshot.IsAnyAvailable)
        {
            return new HealthCheckResult(
                failureStatus,
                FormattableString.Invariant($"{summary}; the soonest returns in {snapshot.TimeUntilAnyAvailable.TotalSeconds:0.###} s."),
                data: data);
        }

        if (partitionsOut.Length > 0)
        {
            var soonest = partitionsOut.Min(snapshot.TimeUntilAnyAvailableFor);
            return new HealthCheckResult(
                failureStatus,
                FormattableString.Invariant(
                    $"{summary}; no backend is available for {Describe(partitionsOut)}; the soonest returns in {soonest.TotalSeconds:0.###} s."),
                data: data);
        }

        if (modelsOut.Length > 0)
        {
            // With model maps a model's throttles sit under each backend's own deployment name: only its backends count.
            var soonest = modelsOut.Min(model => model.TimeUntilAvailable);
            return new HealthCheckResult(
                failureStatus,
                FormattableString.Invariant(
                    $"{summary}; no backend is available for {Describe("model", [.. modelsOut.Select(model => model.Name)])}; the soonest returns in {soonest.TotalSeconds:0.###} s."),
                data: data);
        }

        if (!snapshot.IsTopTierAvailable)
        {
            return HealthCheckResult.Degraded($"{summary}; the priority {tier} tier is unavailable.", data: data);
        }

        if (partitionsSpilling.Length > 0)
        {
            return HealthCheckResult.Degraded($"{summary}; the priority {tier} tier is unavailable for {Describe(partitionsSpilling)}.", data: data);
        }

        if (modelsSpilling.Length > 0)
        {
            return HealthCheckResult.Degraded($"{summary}; the best tier serving {Describe("model", modelsSpilling)} is unavailable.", data: data);
        }

        return HealthCheckResult.Healthy($"{summary}.", data);
    }

    private static string Describe(string[] partitions) => Describe("partition", partitions);

    private static string Describe(string kind, string[] names)
        => kind + (names.Length == 1 ? " " : "s ") + string.Join(", ", names.Select(name => $"'{name}'"));
}
