using System.Globalization;
using System.Text;

namespace PriorityRouting.Simulation;

/// <summary>
/// Formats the results as Markdown tables (readable in a terminal, pasteable into docs) and checks the targets.
/// </summary>
public static class SimulationReport
{
    public const string OursShared = "ours, shared store";
    public const string OursPerReplica = "ours, store per replica";

    private const double TargetLoad = 2.0;

    public static string Format(SimulationSettings settings, IReadOnlyList<RunResult> results)
    {
        var text = new StringBuilder();
        foreach (var replicas in settings.ReplicaCounts)
        {
            var ofReplicas = results.Where(r => r.Replicas == replicas).ToList();
            AppendAcrossLoads(text, settings, ofReplicas, $"{replicas} replica(s): served throughput, % of aggregate capacity", r => Percent(r.ServedFraction), showPhysicalLimit: true);
            AppendAcrossLoads(text, settings, ofReplicas, $"{replicas} replica(s): backend 429s per success", r => Invariant($"{r.ThrottledPerSuccess:0.0000}"));
            AppendAcrossLoads(text, settings, ofReplicas, $"{replicas} replica(s): client-visible 429/503 per request", r => Invariant($"{r.ClientVisibleRejectionsPerRequest:0.000}"));

            text.AppendLine(Invariant($"### {replicas} replica(s), {TargetLoad:0.0}x load: details"));
            text.AppendLine();
            text.AppendLine("| router | served | backend 429s per success | client-visible 429/503 per request | priority-1 utilisation |");
            text.AppendLine("|---|---:|---:|---:|---:|");
            foreach (var result in ofReplicas.Where(r => r.LoadFactor == TargetLoad))
            {
                text.AppendLine(Invariant(
                    $"| {result.Router} | {Percent(result.ServedFraction)} | {result.ThrottledPerSuccess:0.0000} | {result.ClientVisibleRejectionsPerRequest:0.000} | {Percent(result.PriorityOneUtilisation)} |"));
            }

            text.AppendLine();
        }

        return text.ToString();
    }

    private static void AppendAcrossLoads(
        StringBuilder text,
        SimulationSettings settings,
        List<RunResult> results,
        string title,
        Func<RunResult, string> cell,
        bool showPhysicalLimit = false)
    {
        text.AppendLine("### " + title);
        text.AppendLine();
        text.AppendLine("| router | " + string.Join(" | ", settings.LoadFactors.Select(l => Invariant($"{l:0.0}x load"))) + " |");
        text.AppendLine("|---|" + string.Concat(settings.LoadFactors.Select(_ => "---:|")));
        if (showPhysicalLimit)
        {
            text.AppendLine("| *physical limit* | " + string.Join(" | ", settings.LoadFactors.Select(l => Percent(Math.Min(l, 1)))) + " |");
        }

        foreach (var router in results.Select(r => r.Router).Distinct())
        {
            text.AppendLine($"| {router} | " + string.Join(" | ", settings.LoadFactors.Select(load => cell(results.Single(r => r.Router == router && r.LoadFactor == load)))) + " |");
        }

        text.AppendLine();
    }

    /// <summary>Checks the targets of ours; returns one line per target, each starting with PASS or MISS.</summary>
    public static IReadOnlyList<string> CheckTargets(IReadOnlyList<RunResult> results)
    {
        var lines = new List<string>();
        var single = Find(results, OursShared, TargetLoad, 1);
        if (single is not null)
        {
            lines.Add(Verdict(single.ServedFraction >= 0.99, Invariant($"served >= 99% of aggregate capacity at 2x overload, 1 replica: {Percent(single.ServedFraction)}")));
            lines.Add(Verdict(single.ThrottledPerSuccess <= 0.01, Invariant($"<= 0.01 backend 429s per success, 1 replica: {single.ThrottledPerSuccess:0.0000}")));
        }

        var maxReplicas = results.Max(r => r.Replicas);
        var perReplica = Find(results, OursPerReplica, TargetLoad, maxReplicas);
        var shared = Find(results, OursShared, TargetLoad, maxReplicas);
        if (maxReplicas > 1 && perReplica is not null && shared is not null)
        {
            var factor = perReplica.ThrottledPerSuccess / shared.ThrottledPerSuccess;
            var cut = shared.ThrottledPerSuccess == 0 ? "none left" : Invariant($"{factor:0.0}x");
            lines.Add(Verdict(factor >= 4, Invariant(
                $"{maxReplicas} replicas: shared store cuts 429s per success >= 4x: {perReplica.ThrottledPerSuccess:0.0000} -> {shared.ThrottledPerSuccess:0.0000} ({cut})")));
        }

        return lines;
    }

    private static RunResult? Find(IReadOnlyList<RunResult> results, string router, double load, int replicas)
        => results.FirstOrDefault(r => r.Router == router && r.LoadFactor == load && r.Replicas == replicas);

    private static string Verdict(bool met, string what) => (met ? "PASS  " : "MISS  ") + what;

    private static string Percent(double fraction) => Invariant($"{fraction * 100:0.0}%");

    private static string Invariant(FormattableString value) => value.ToString(CultureInfo.InvariantCulture);
}
