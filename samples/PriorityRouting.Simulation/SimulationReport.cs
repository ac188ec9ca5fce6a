using System.Globalization;
using System.Text;
using PriorityRouting.Simulation.Routers;

namespace PriorityRouting.Simulation;

/// <summary>
/// Formats the results as Markdown tables (readable in a terminal, pasteable into docs) and checks the goals.
/// </summary>
public static class SimulationReport
{
    public const string Ours = PriorityRoutingRouter.OursName;
    public const string OursBefore = PriorityRoutingRouter.BeforeName;
    public const string OursQueue = PriorityRoutingRouter.QueueName;

    public static string Format(SimulationSettings settings, IReadOnlyList<RunResult> results)
    {
        var text = new StringBuilder();
        foreach (var scenario in settings.Scenarios)
        {
            foreach (var replicas in settings.ReplicaCounts)
            {
                var runs = results.Where(r => r.Scenario == scenario.Name && r.Replicas == replicas).ToList();
                if (runs.Count == 0)
                {
                    continue;
                }

                var title = $"{scenario.Name}, {replicas} replica(s)";
                AppendAcrossLoads(text, settings, runs, $"{title}: served share of aggregate {scenario.Unit} capacity", r => Percent(r.ServedFraction));
                AppendAcrossLoads(text, settings, runs, $"{title}: backend 429s per success", r => Invariant($"{r.ThrottledPerSuccess:0.0000}"));
                AppendAcrossLoads(text, settings, runs, $"{title}: client-visible 429/503 per request (floor)", r => Invariant($"{r.ClientVisibleRejectionsPerRequest:0.000} ({r.ClientVisibleRejectionsFloor:0.000})"));
                AppendAcrossLoads(text, settings, runs, $"{title}: kept-promise rate (served share of retries)", r => Invariant($"{r.KeptPromiseRate:0.000}"));
                AppendAcrossLoads(text, settings, runs, $"{title}: p50 / p99 time to success, ms", r => Invariant($"{r.P50TimeToSuccessMs:0} / {r.P99TimeToSuccessMs:0}"));
                AppendAcrossLoads(text, settings, runs, $"{title}: priority-1 utilisation while anything spills over", r => double.IsNaN(r.PriorityOneUtilisationWhileSpilling) ? "-" : Percent(r.PriorityOneUtilisationWhileSpilling));
            }
        }

        return text.ToString();
    }

    /// <summary>Checks the goals of ours; returns one line per goal, each starting with PASS or MISS.</summary>
    public static IReadOnlyList<string> CheckTargets(IReadOnlyList<RunResult> results)
    {
        var lines = new List<string>();
        foreach (var scenario in results.Select(r => r.Scenario).Distinct())
        {
            var mixed = scenario.Contains("mixed", StringComparison.Ordinal);
            foreach (var run in results.Where(r => r.Scenario == scenario && r.Router == Ours).OrderBy(r => r.Replicas).ThenBy(r => r.LoadFactor))
            {
                var where = Invariant($"{scenario}, {run.Replicas} replica(s), {run.LoadFactor:0.0}x");
                if (mixed)
                {
                    lines.Add(Verdict(run.ThrottledPerSuccess <= 0.001, Invariant($"{where}: backend 429s per success <= 0.001: {run.ThrottledPerSuccess:0.0000}")));
                    if (run.LoadFactor > 1)
                    {
                        lines.Add(Verdict(run.ServedFraction >= 0.99, Invariant($"{where}: served share >= 99%: {Percent(run.ServedFraction)}")));
                    }

                    if (!double.IsNaN(run.PriorityOneUtilisationWhileSpilling))
                    {
                        lines.Add(Verdict(run.PriorityOneUtilisationWhileSpilling >= 0.98, Invariant($"{where}: priority-1 utilisation while spilling >= 98%: {Percent(run.PriorityOneUtilisationWhileSpilling)}")));
                    }
                }

                if (run.LoadFactor is 1.5 or 2.0)
                {
                    var before = Find(results, scenario, OursBefore, run.LoadFactor, run.Replicas);
                    var python = Find(results, scenario, "python-style, per replica", run.LoadFactor, run.Replicas);
                    lines.Add(Verdict(run.KeptPromiseRate >= 0.9, Invariant(
                        $"{where}: kept-promise rate >= 0.9: {run.KeptPromiseRate:0.000} (ours (before) {before?.KeptPromiseRate:0.000}, python-style {python?.KeptPromiseRate:0.000})")));
                }

                if (run.LoadFactor == 2.0)
                {
                    lines.Add(Verdict(run.ClientVisibleRejectionsPerRequest - run.ClientVisibleRejectionsFloor <= 0.25, Invariant(
                        $"{where}: client-visible 429/503 per request within 0.25 of the floor: {run.ClientVisibleRejectionsPerRequest:0.000} vs {run.ClientVisibleRejectionsFloor:0.000}")));
                }
            }
        }

        return lines;
    }

    private static void AppendAcrossLoads(StringBuilder text, SimulationSettings settings, List<RunResult> results, string title, Func<RunResult, string> cell)
    {
        text.AppendLine("### " + title);
        text.AppendLine();
        text.AppendLine("| router | " + string.Join(" | ", settings.LoadFactors.Select(l => Invariant($"{l:0.0}x load"))) + " |");
        text.AppendLine("|---|" + string.Concat(settings.LoadFactors.Select(_ => "---:|")));
        foreach (var router in results.Select(r => r.Router).Distinct())
        {
            text.AppendLine($"| {router} | " + string.Join(" | ", settings.LoadFactors.Select(load => cell(results.Single(r => r.Router == router && r.LoadFactor == load)))) + " |");
        }

        text.AppendLine();
    }

    private static RunResult? Find(IReadOnlyList<RunResult> results, string scenario, string router, double load, int replicas)
        => results.FirstOrDefault(r => r.Scenario == scenario && r.Router == router && r.LoadFactor == load && r.Replicas == replicas);

    private static string Verdict(bool met, string what) => (met ? "PASS  " : "MISS  ") + what;

    private static string Percent(double fraction) => Invariant($"{fraction * 100:0.0}%");

    private static string Invariant(FormattableString value) => value.ToString(CultureInfo.InvariantCulture);
}
