using ScottPlot;

namespace PriorityRouting.Demo;

/// <summary>
/// Draws, second by second, what each backend answered: 200s stacked upwards by backend (the PTU at the bottom, so the
/// spill-over to pay-as-you-go is the band above its quota), 429s stacked downwards in red. The priority-routing run on
/// top, the same burst against the PTU alone below, on the same scales.
/// </summary>
internal static class SpilloverChart
{
    private static readonly Color[] Served = [Colors.SteelBlue, Colors.DarkOrange, Colors.SeaGreen, Colors.Purple];

    private static readonly Color[] Throttled = [Colors.Crimson, Colors.IndianRed, Colors.LightCoral, Colors.DarkRed];

    public static void Save(string path, ScenarioResult routed, ScenarioResult baseline, double offeredPerSecond)
    {
        var seconds = (int)Math.Ceiling(Math.Max(routed.Burst.Elapsed.TotalSeconds, baseline.Burst.Elapsed.TotalSeconds));
        var multiplot = new Multiplot();
        multiplot.AddPlots(2);
        var top = multiplot.GetPlot(0);
        var bottom = multiplot.GetPlot(1);
        var quota = routed.Backends[0].Spec;

        Draw(top, routed, seconds, offeredPerSecond, quota);
        Draw(bottom, baseline, seconds, offeredPerSecond, quota);
        top.Title($"{routed.Title}: spill-over above the PTU's quota; {Failures(routed)}");
        bottom.Title($"{baseline.Title}: the same burst, 429s instead of spill-over; {Failures(baseline)}");
        bottom.Axes.Bottom.Label.Text = "seconds since the first answer of the burst";

        // One scale for both, so that the two runs compare at a glance.
        var upper = Math.Max(Math.Max(Top(routed, seconds, ok: true), Top(baseline, seconds, ok: true)), offeredPerSecond) * 1.15;
        var lower = -Math.Max(Top(routed, seconds, ok: false), Top(baseline, seconds, ok: false)) * 1.15;
        foreach (var plot in new[] { top, bottom })
        {
            plot.Axes.SetLimits(0, seconds, Math.Min(lower, -1), upper);
            plot.Axes.Left.Label.Text = "answers/s (429s below 0)";
            plot.ShowLegend(Alignment.LowerRight);
        }

        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        multiplot.SavePng(path, 1100, 900);
    }

    private static void Draw(Plot plot, ScenarioResult scenario, int seconds, double offeredPerSecond, FakeBackendSpec quota)
    {
        var xs = StepXs(seconds);
        var servedBase = new double[seconds];
        var throttledBase = new double[seconds];
        var start = FirstAnswer(scenario, seconds);
        for (var i = 0; i < scenario.Backends.Count; i++)
        {
            var backend = scenario.Backends[i];
            var (ok, throttled) = Timeline(backend, seconds, start);
            if (ok.Sum() + throttled.Sum() == 0)
            {
                continue; // Not called in this run (the baseline calls the PTU only): no empty band in the legend.
            }

            var servedTop = servedBase.Zip(ok, (below, own) => below + own).ToArray();
            var band = plot.Add.FillY(xs, Steps(servedBase), Steps(servedTop));
            band.FillColor = Served[i % Served.Length].WithAlpha(0.85);
            band.LineWidth = 0;
            band.LegendText = $"{backend.Spec.Name} (priority {backend.Spec.Priority}): 200s";
            servedBase = servedTop;

            if (throttled.Sum() == 0)
            {
                continue;
            }

            var throttledTop = throttledBase.Zip(throttled, (below, own) => below - own).ToArray();
            var rejected = plot.Add.FillY(xs, Steps(throttledBase), Steps(throttledTop));
            rejected.FillColor = Throttled[i % Throttled.Length].WithAlpha(0.9);
            rejected.LineWidth = 0;
            rejected.LegendText = $"{backend.Spec.Name}: 429s";
            throttledBase = throttledTop;
        }

        var offered = plot.Add.HorizontalLine(offeredPerSecond);
        offered.Color = Colors.Black;
        offered.LineWidth = 1.5f;
        offered.LinePattern = LinePattern.Dashed;
        offered.LegendText = $"offered load ({offeredPerSecond:0.#}/s)";

        var quotaLine = plot.Add.HorizontalLine(quota.RequestsPerSecond);
        quotaLine.Color = Served[0];
        quotaLine.LineWidth = 1.5f;
        quotaLine.LinePattern = LinePattern.Dotted;
        quotaLine.LegendText = $"{quota.Name} quota ({quota.RequestsPerMinute}/min)";

        var zero = plot.Add.HorizontalLine(0);
        zero.Color = Colors.Black;
        zero.LineWidth = 1;
    }

    private static string Failures(ScenarioResult scenario)
        => $"{scenario.Burst.Failed} of {scenario.Burst.Sent} calls failed";

    /// <summary>
    /// The second of a run's first answer: the backends count from their own start, which comes before the burst by
    /// however long the client's warm-up took; both runs are drawn from their first answer.
    /// </summary>
    private static int FirstAnswer(ScenarioResult scenario, int seconds)
    {
        var first = seconds;
        foreach (var backend in scenario.Backends)
        {
            var (ok, throttled) = backend.Statistics.GetTimeline(seconds);
            var own = Enumerable.Range(0, seconds).FirstOrDefault(second => ok[second] + throttled[second] > 0, -1);
            first = own >= 0 && own < first ? own : first;
        }

        return first == seconds ? 0 : first;
    }

    /// <summary>A backend's answers per second from <paramref name="start"/> on, <paramref name="seconds"/> of them.</summary>
    private static (double[] Ok, double[] Throttled) Timeline(FakeAzureOpenAiBackend backend, int seconds, int start)
    {
        var (ok, throttled) = backend.Statistics.GetTimeline(start + seconds);
        return (ok[start..], throttled[start..]);
    }

    /// <summary>The highest stacked second of 200s (or of 429s) of a run.</summary>
    private static double Top(ScenarioResult scenario, int seconds, bool ok)
    {
        var total = new double[seconds];
        foreach (var backend in scenario.Backends)
        {
            var (served, throttled) = backend.Statistics.GetTimeline(seconds);
            var own = ok ? served : throttled;
            for (var second = 0; second < seconds; second++)
            {
                total[second] += own[second];
            }
        }

        return total.DefaultIfEmpty().Max();
    }

    /// <summary>Each second as a flat step from its start to its end: a count per second is a bar, not a slope.</summary>
    private static double[] StepXs(int seconds) => [.. Enumerable.Range(0, seconds).SelectMany(second => new double[] { second, second + 1 })];

    private static double[] Steps(double[] perSecond) => [.. perSecond.SelectMany(value => new[] { value, value })];
}
