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
    public const string OursReserved = PriorityRoutingRouter.ReservedName;
    public const string OursDeclared = PriorityRoutingRouter.DeclaredName;

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
                AppendAcrossLoads(text, runs, $"{title}: served share of aggregate {scenario.Unit} capacity (an ideal priority router's / any router's on the same arrivals)", r => Invariant($"{Percent(r.ServedFraction)} ({Percent(r.IdealServedShare)} / {Percent(r.IdealAnyOrderServedShare)})"));
                AppendAcrossLoads(text, runs, $"{title}: backend 429s per success", r => Invariant($"{r.ThrottledPerSuccess:0.0000}"));
                AppendAcrossLoads(text, runs, $"{title}: client-visible 429/503 per request (floor)", r => Invariant($"{r.ClientVisibleRejectionsPerRequest:0.000} ({r.ClientVisibleRejectionsFloor:0.000})"));
                AppendAcrossLoads(text, runs, $"{title}: kept-promise rate (served share of retries) / its bound", r => Invariant($"{r.KeptPromiseRate:0.000} / {r.KeptPromiseBound:0.000}"));
                AppendAcrossLoads(text, runs, $"{title}: p50 / p99 time to success, ms", r => Invariant($"{r.P50TimeToSuccessMs:0} / {r.P99TimeToSuccessMs:0}"));
                AppendAcrossLoads(text, runs, $"{title}: priority-1 utilisation while anything spills over", r => double.IsNaN(r.PriorityOneUtilisationWhileSpilling) ? "-" : Percent(r.PriorityOneUtilisationWhileSpilling));
                if (scenario.HasClasses)
                {
                    AppendAcrossLoads(text, runs, $"{title}: served share of foreground / background requests; foreground p99 time to success, ms", r => Invariant(
                        $"{Percent(r.ForegroundServedShare)} / {Percent(r.BackgroundServedShare)}; {r.ForegroundP99TimeToSuccessMs:0}"));
                }
            }
        }

        return text.ToString();
    }

    /// <summary>Checks the goals; returns one line per goal, each starting with PASS or MISS.</summary>
    /// <remarks>
    /// Answered at once (the first two scenarios), "ours": no backend 429 with mixed sizes, served share and priority-1
    /// utilisation; at 1.5x and 2x its kept promises against the bound. In flight, "ours" at one replica (no backend
    /// 429, served share, priority-1 utilisation) and "ours (reserved)" at 8 and 32 replicas: the goals of issue 21. In the classes scenario: the foreground's served share.
    /// </remarks>
    public static IReadOnlyList<string> CheckTargets(IReadOnlyList<RunResult> results)
    {
        var lines = new List<string>();
        foreach (var scenario in results.Select(r => r.Scenario).Distinct())
        {
            if (scenario == SimulationSettings.InFlightScenario)
            {
                CheckOneReplica(results, scenario, lines);
                CheckReserved(results, scenario, lines);
                continue;
            }

            if (scenario == SimulationSettings.ClassesScenario)
            {
                foreach (var run in results.Where(r => r.Scenario == scenario && r.Router is Ours or OursReserved).OrderBy(r => r.Replicas))
                {
                    var where = Invariant($"{scenario}, {run.Router}, {run.Replicas} replica(s)");
                    lines.Add(Verdict(run.ForegroundServedShare >= 0.99, Invariant(
                        $"{where}: foreground served share >= 99%: {Percent(run.ForegroundServedShare)} (background {Percent(run.BackgroundServedShare)})")));
                    if (results.FirstOrDefault(r => r.Scenario == SimulationSettings.ClassesBaselineScenario && r.Router == run.Router && r.Replicas == run.Replicas) is { } alone)
                    {
                        lines.Add(Verdict(run.ForegroundP99TimeToSuccessMs <= 1.1 * alone.ForegroundP99TimeToSuccessMs, Invariant(
                            $"{where}: foreground p99 time to success within 10% of the run without background: {run.ForegroundP99TimeToSuccessMs:0} ms vs {alone.ForegroundP99TimeToSuccessMs:0} ms")));
                    }
                }

                continue;
            }

            if (scenario is SimulationSettings.ClassesBaselineScenario or SimulationSettings.NoHeadersScenario)
            {
                continue;
            }

            var mixed = scenario.Contains("mixed", StringComparison.Ordinal);
            foreach (var run in results.Where(r => r.Scenario == scenario && r.Router == Ours).OrderBy(r => r.Replicas).ThenBy(r => r.LoadFactor))
            {
                var where = Invariant($"{scenario}, {run.Replicas} replica(s), {run.LoadFactor:0.0}x");
                if (mixed)
                {
                    lines.Add(Verdict(run.ThrottledPerSuccess <= 0.001, Invariant($"{where}: backend 429s per success <= 0.001: {run.ThrottledPerSuccess:0.0000}")));
                    if (run.LoadFactor > 1)
                    {
                        lines.Add(Verdict(run.ServedFraction >= 0.99, Invariant($"{where}: served share >= 99%: {run.ServedFraction * 100:0.00}% (an ideal priority router's {run.IdealServedShare * 100:0.00}%)")));
                    }

                    if (!double.IsNaN(run.PriorityOneUtilisationWhileSpilling))
                    {
                        lines.Add(Verdict(run.PriorityOneUtilisationWhileSpilling >= 0.98, Invariant($"{where}: priority-1 utilisation while spilling >= 98%: {Percent(run.PriorityOneUtilisationWhileSpilling)}")));
                    }
                }

                if (run.LoadFactor is 1.5 or 2.0)
                {
                    lines.Add(KeptPromiseVerdict(run, where));
                }
            }
        }

        return lines;
    }

    private static void CheckReserved(IReadOnlyList<RunResult> results, string scenario, List<string> lines)
    {
        foreach (var run in results.Where(r => r.Scenario == scenario && r.Router == OursReserved && r.Replicas >= 8).OrderBy(r => r.Replicas).ThenBy(r => r.LoadFactor))
        {
            var where = Invariant($"{scenario}, {OursReserved}, {run.Replicas} replicas, {run.LoadFactor:0.0}x");
            lines.Add(Verdict(run.ThrottledPerSuccess <= 0.001, Invariant($"{where}: backend 429s per success <= 0.001: {run.ThrottledPerSuccess:0.0000}")));
            if (run.LoadFactor > 1)
            {
                lines.Add(Verdict(run.ServedFraction >= 0.99, Invariant($"{where}: served share >= 99%: {run.ServedFraction * 100:0.00}% (an ideal priority router's {run.IdealServedShare * 100:0.00}%)")));
                lines.Add(KeptPromiseVerdict(run, where));
            }

            var others = results.Where(r => r.Scenario == scenario && r.Replicas == run.Replicas && r.LoadFactor == run.LoadFactor && r.Router != OursReserved).ToList();
            if (others.Count > 0)
            {
                var fewest = others.MinBy(r => r.ClientVisibleRejectionsPerRequest)!;
                lines.Add(Verdict(run.ClientVisibleRejectionsPerRequest <= fewest.ClientVisibleRejectionsPerRequest, Invariant(
                    $"{where}: client-visible 429/503 per request no more than any other router's: {run.ClientVisibleRejectionsPerRequest:0.000} ({fewest.Router}: {fewest.ClientVisibleRejectionsPerRequest:0.000})")));
            }
        }
    }

    /// <summary>In flight, "ours" at one replica: no backend 429, 99 % served above 1x, 98 % priority-1 utilisation.</summary>
    private static void CheckOneReplica(IReadOnlyList<RunResult> results, string scenario, List<string> lines)
    {
        foreach (var run in results.Where(r => r.Scenario == scenario && r.Router == Ours && r.Replicas == 1).OrderBy(r => r.LoadFactor))
        {
            var where = Invariant($"{scenario}, {Ours}, 1 replica, {run.LoadFactor:0.0}x");
            lines.Add(Verdict(run.BackendThrottled == 0, Invariant($"{where}: no backend 429: {run.BackendThrottled} ({run.ThrottledPerSuccess:0.0000} per success)")));
            if (run.LoadFactor > 1)
            {
                lines.Add(Verdict(run.ServedFraction >= 0.99, Invariant($"{where}: served share >= 99%: {run.ServedFraction * 100:0.00}% (an ideal priority router's {run.IdealServedShare * 100:0.00}%)")));
            }

            if (!double.IsNaN(run.PriorityOneUtilisationWhileSpilling))
            {
                lines.Add(Verdict(run.PriorityOneUtilisationWhileSpilling >= 0.98, Invariant($"{where}: priority-1 utilisation while spilling >= 98%: {Percent(run.PriorityOneUtilisationWhileSpilling)}")));
            }
        }
    }

    private static string KeptPromiseVerdict(RunResult run, string where)
        => Verdict(run.KeptPromiseRate >= 0.95 * run.KeptPromiseBound, Invariant(
            $"{where}: kept-promise rate >= 0.95 x its bound {run.KeptPromiseBound:0.000}: {run.KeptPromiseRate:0.000}"));

    private static void AppendAcrossLoads(StringBuilder text, List<RunResult> results, string title, Func<RunResult, string> cell)
    {
        var loads = results.Select(r => r.LoadFactor).Distinct().Order().ToList();
        text.AppendLine("### " + title);
        text.AppendLine();
        text.AppendLine("| router | " + string.Join(" | ", loads.Select(l => Invariant($"{l:0.0}x load"))) + " |");
        text.AppendLine("|---|" + string.Concat(loads.Select(_ => "---:|")));
        foreach (var router in results.Select(r => r.Router).Distinct())
        {
            text.AppendLine($"| {router} | " + string.Join(" | ", loads.Select(load => cell(results.Single(r => r.Router == router && r.LoadFactor == load)))) + " |");
        }

        text.AppendLine();
    }

    private static string Verdict(bool met, string what) => (met ? "PASS  " : "MISS  ") + what;

    private static string Percent(double fraction) => Invariant($"{fraction * 100:0.0}%");

    private static string Invariant(FormattableString value) => value.ToString(CultureInfo.InvariantCulture);
}
