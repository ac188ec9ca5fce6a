using ScottPlot;

namespace PriorityRouting.Demo;

/// <summary>
/// Draws requests per second per backend over time, so that the spill-over from the PTU to pay-as-you-go shows.
/// </summary>
internal static class SpilloverChart
{
    private static readonly Color[] Palette = [Colors.SteelBlue, Colors.DarkOrange, Colors.SeaGreen, Colors.Purple];

    public static void Save(string path, ScenarioResult routed, ScenarioResult baseline)
    {
        var seconds = (int)Math.Ceiling(Math.Max(routed.Burst.Elapsed.TotalSeconds, baseline.Burst.Elapsed.TotalSeconds));
        var xs = Enumerable.Range(0, seconds).Select(second => second + 0.5).ToArray();

        var plot = new Plot();
        for (var i = 0; i < routed.Backends.Count; i++)
        {
            var backend = routed.Backends[i];
            var (ok, throttled) = backend.Statistics.GetTimeline(seconds);
            var color = Palette[i % Palette.Length];

            var served = plot.Add.Scatter(xs, ok);
            served.Color = color;
            served.LineWidth = 2.5f;
            served.MarkerSize = 5;
            served.LegendText = $"{backend.Spec.Name} (priority {backend.Spec.Priority}) 200/s";

            var rejected = plot.Add.Scatter(xs, throttled);
            rejected.Color = color.WithAlpha(0.8);
            rejected.LineWidth = 1.5f;
            rejected.LinePattern = LinePattern.Dashed;
            rejected.MarkerSize = 0;
            rejected.LegendText = $"{backend.Spec.Name} 429/s";
        }

        // What users have today: the same burst on the PTU alone, served 200s only.
        var (baselineOk, _) = baseline.Backends[0].Statistics.GetTimeline(seconds);
        var single = plot.Add.Scatter(xs, baselineOk);
        single.Color = Colors.Gray;
        single.LineWidth = 1.5f;
        single.LinePattern = LinePattern.Dotted;
        single.MarkerSize = 0;
        single.LegendText = $"{baseline.Title}: {baseline.Backends[0].Spec.Name} 200/s";

        var quota = routed.Backends[0].Spec;
        var quotaLine = plot.Add.HorizontalLine(quota.RequestsPerSecond);
        quotaLine.Color = Palette[0].WithAlpha(0.5);
        quotaLine.LineWidth = 1;
        quotaLine.LegendText = $"{quota.Name} quota ({quota.RequestsPerMinute}/min)";

        plot.Title("Priority routing: requests per second per backend");
        plot.Axes.Bottom.Label.Text = "seconds since the start of the burst";
        plot.Axes.Left.Label.Text = "answers per second";
        plot.Axes.AutoScale();
        plot.Axes.SetLimitsY(0, plot.Axes.GetLimits().Top * 1.1);
        plot.ShowLegend(Alignment.UpperRight);

        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        plot.SavePng(path, 1100, 550);
    }
}
