using System.Globalization;

namespace PriorityRouting.Demo;

/// <summary>
/// Prints the scenarios side by side as a plain-text table, readable in any terminal and pasteable into docs.
/// </summary>
internal static class ResultsTable
{
    private const int LabelWidth = 36;
    private const int ColumnWidth = 30;

    public static void Print(IReadOnlyList<ScenarioResult> scenarios)
    {
        var rows = new List<(string Label, string[] Cells)>
        {
            ("", [.. scenarios.Select(s => s.Title)]),
        };

        foreach (var backendName in scenarios[0].Backends.Select(b => b.Spec.Name))
        {
            rows.Add(($"{backendName}: requests / 200 / 429", [.. scenarios.Select(s => BackendCell(s, backendName))]));
        }

        rows.Add(("429s received (all backends)", [.. scenarios.Select(s => $"{Throttled(s)}")]));
        rows.Add(("429s received per success", [.. scenarios.Select(ThrottledPerSuccess)]));
        rows.Add(("client-visible failures", [.. scenarios.Select(s => $"{s.Burst.Failed} of {s.Burst.Sent}")]));
        rows.Add(("latency p50 / p95 (ms, successes)", [.. scenarios.Select(s => $"{Milliseconds(s.Burst.Percentile(0.50))} / {Milliseconds(s.Burst.Percentile(0.95))}")]));
        rows.Add(("wall time (s)", [.. scenarios.Select(s => s.Burst.Elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture))]));

        var rule = new string('-', LabelWidth + (scenarios.Count * (ColumnWidth + 3)));
        Console.WriteLine(rule);
        foreach (var (label, cells) in rows)
        {
            Console.WriteLine(label.PadRight(LabelWidth) + string.Concat(cells.Select(c => " | " + c.PadRight(ColumnWidth))));
            if (label.Length == 0)
            {
                Console.WriteLine(rule);
            }
        }

        Console.WriteLine(rule);
    }

    private static string BackendCell(ScenarioResult scenario, string backendName)
    {
        var statistics = scenario.Backends.First(b => b.Spec.Name == backendName).Statistics;
        return statistics.Requests == 0
            ? "- (not used)"
            : $"{statistics.Requests} / {statistics.Ok} / {statistics.Throttled}";
    }

    private static string ThrottledPerSuccess(ScenarioResult scenario)
    {
        var throttled = Throttled(scenario);
        return scenario.Burst.Succeeded == 0
            ? "n/a"
            : ((double)throttled / scenario.Burst.Succeeded).ToString("0.00", CultureInfo.InvariantCulture);
    }

    private static long Throttled(ScenarioResult scenario) => scenario.Backends.Sum(b => b.Statistics.Throttled);

    private static string Milliseconds(TimeSpan value) => value.TotalMilliseconds.ToString("0", CultureInfo.InvariantCulture);
}
