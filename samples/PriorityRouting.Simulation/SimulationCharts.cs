using System.Globalization;
using ScottPlot;

namespace PriorityRouting.Simulation;

/// <summary>
/// Draws the two numbers that tell the routers apart: served throughput against offered load, and backend 429s per
/// success against offered load (log scale), one line per router.
/// </summary>
public static class SimulationCharts
{
    private static readonly Color[] Palette = [Colors.Gray, Colors.Purple, Colors.DarkOrange, Colors.Olive, Colors.SteelBlue, Colors.SeaGreen, Colors.Crimson, Colors.Black];

    /// <summary>Writes <c>simulation-throughput.png</c> and <c>simulation-429s.png</c> into <paramref name="directory"/>.</summary>
    /// <returns>The paths written.</returns>
    public static IReadOnlyList<string> Save(string directory, IReadOnlyList<RunResult> results)
    {
        Directory.CreateDirectory(directory);
        var replicas = results.Max(r => r.Replicas);

        // The last mixed-size scenario run at several loads (in flight when it ran): it tells the routers apart on tokens.
        var scenario = results.GroupBy(r => r.Scenario).Where(g => g.Select(r => r.LoadFactor).Distinct().Count() > 1).Select(g => g.Key)
            .LastOrDefault(s => s.Contains("mixed", StringComparison.Ordinal)) ?? results[0].Scenario;
        results = [.. results.Where(r => r.Scenario == scenario)];
        var throughput = Path.Combine(directory, "simulation-throughput.png");
        var throttled = Path.Combine(directory, "simulation-429s.png");

        DrawPerRouter(results, replicas, r => r.ServedFraction * 100, logScale: false,
            $"Served share, {scenario}, {replicas} replicas", "% of aggregate capacity").SavePng(throughput, 900, 500);
        DrawPerRouter(results, replicas, r => r.ThrottledPerSuccess, logScale: true,
            $"Backend 429s per success, {scenario}, {replicas} replicas", "429s per success (log scale; none is drawn at 0.0001)").SavePng(throttled, 900, 500);
        return [throughput, throttled];
    }

    private static Plot DrawPerRouter(IReadOnlyList<RunResult> results, int replicas, Func<RunResult, double> value, bool logScale, string title, string yLabel)
    {
        var plot = new Plot();
        var ofReplicas = results.Where(r => r.Replicas == replicas).ToList();
        var routers = ofReplicas.Select(r => r.Router).Distinct().ToList();
        for (var i = 0; i < routers.Count; i++)
        {
            var runs = ofReplicas.Where(r => r.Router == routers[i]).OrderBy(r => r.LoadFactor).ToList();

            // ScottPlot draws linear axes: a log scale is log10 of the data with labels put back in plain numbers.
            var ys = runs.Select(r => logScale ? Math.Log10(Math.Max(value(r), 1e-4)) : value(r)).ToArray();
            var line = plot.Add.Scatter(runs.Select(r => r.LoadFactor).ToArray(), ys);
            line.Color = Palette[i % Palette.Length];
            line.LineWidth = 2;
            line.MarkerSize = 6;
            line.LegendText = routers[i];
        }

        if (logScale)
        {
            double[] decades = [-4, -3, -2, -1, 0, 1, 2];
            plot.Axes.Left.SetTicks(decades, [.. decades.Select(d => Math.Pow(10, d).ToString("0.####", CultureInfo.InvariantCulture))]);
        }

        plot.Title(title);
        plot.Axes.Bottom.Label.Text = "offered load, multiple of aggregate capacity";
        plot.Axes.Left.Label.Text = yLabel;
        // Mid-height on the right is the one place both charts leave empty.
        plot.ShowLegend(Alignment.MiddleRight);
        return plot;
    }
}
