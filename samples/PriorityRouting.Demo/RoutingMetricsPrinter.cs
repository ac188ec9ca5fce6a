using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace PriorityRouting.Demo;

/// <summary>
/// Listens to the library's meter (<c>Polly.PriorityRouting</c>) with a plain <see cref="MeterListener"/>: sums the
/// counters by backend and outcome or reason, samples the gauges once per progress line, and prints both as compact
/// lines and a final summary. No exporter, no extra package: what an OpenTelemetry pipeline would receive, on the console.
/// </summary>
/// <remarks>
/// Every pipeline built by the scenario (one per replica) reports to the meter of its own container's
/// <see cref="IMeterFactory"/>; the listener takes them all, by meter name. Gauges are reported per pipeline: the printer
/// shows the highest value among them.
/// </remarks>
internal sealed class RoutingMetricsPrinter : IDisposable
{
    private const string MeterName = "Polly.PriorityRouting";
    private const string Attempts = "priority_routing.attempts";
    private const string Failovers = "priority_routing.failovers";
    private const string MarkedUnavailable = "priority_routing.backend.marked_unavailable";
    private const string Exhausted = "priority_routing.exhausted";
    private const string UnavailableBackends = "priority_routing.tier.unavailable_backends";
    private const string TimeUntilAvailable = "priority_routing.time_until_available";
    private const string Indent = "         ";

    private readonly IReadOnlyList<FakeBackendSpec> _backends;
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<(string Instrument, string Key), long> _totals = new();

    // Gauges: the values of the current observation (highest over the pipelines) and the peaks over the run.
    private readonly Lock _gaugeLock = new();
    private readonly Dictionary<string, double> _gaugeNow = [];
    private readonly Dictionary<string, double> _gaugePeak = [];
    private int _instruments;

    public RoutingMetricsPrinter(IReadOnlyList<FakeBackendSpec> backends)
    {
        _backends = backends;
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == MeterName)
            {
                Interlocked.Increment(ref _instruments);
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => OnCounter(instrument, value, tags));
        _listener.SetMeasurementEventCallback<int>((instrument, value, tags, _) => OnGauge(instrument, value, tags));
        _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => OnGauge(instrument, value, tags));
        _listener.Start();
    }

    /// <summary>Prints one line per instrument: totals so far, and the gauges as observed now.</summary>
    public void PrintProgress()
    {
        if (Volatile.Read(ref _instruments) == 0)
        {
            return; // Not a priority-routing client (the baseline), or no pipeline built yet.
        }

        Observe();
        Console.WriteLine($"{Indent}{"attempts",-20}{PerBackend(Attempts)}");
        Console.WriteLine($"{Indent}{"failovers",-20}{PerBackend(Failovers)}");
        Console.WriteLine($"{Indent}{"marked_unavailable",-20}{PerBackend(MarkedUnavailable)}");
        Console.WriteLine($"{Indent}{"exhausted",-20}{ByKey(Exhausted, "none")}");
        lock (_gaugeLock)
        {
            Console.WriteLine($"{Indent}{"gauges",-20}tier.unavailable_backends {Tiers(_gaugeNow)}  time_until_available {Seconds(_gaugeNow)}");
        }
    }

    /// <summary>Prints the totals of the run per backend, the exhausted answers and the gauges' peaks.</summary>
    public void PrintSummary(string title)
    {
        if (Volatile.Read(ref _instruments) == 0)
        {
            return;
        }

        Observe();
        Console.WriteLine();
        Console.WriteLine($"Metrics of meter {MeterName}, {title}:");
        var header = $"  {"backend",-12} {"attempts",9} {"returned",9} {"throttled",10} {"other",6} {"failovers",10}  marked_unavailable (by reason)";
        Console.WriteLine(header);
        Console.WriteLine("  " + new string('-', header.Length - 2));
        foreach (var backend in _backends)
        {
            var outcomes = Values(Attempts, backend.Name);
            var attempts = outcomes.Sum(o => o.Count);
            var returned = outcomes.Where(o => o.Label == "returned").Sum(o => o.Count);
            var throttled = outcomes.Where(o => o.Label == "throttled").Sum(o => o.Count);
            var unavailable = Values(MarkedUnavailable, backend.Name);
            var row = string.Create(CultureInfo.InvariantCulture,
                $"  {backend.Name,-12} {attempts,9} {returned,9} {throttled,10} {attempts - returned - throttled,6} {Values(Failovers, backend.Name).Sum(o => o.Count),10}  {unavailable.Sum(o => o.Count)} {Describe(unavailable)}");
            Console.WriteLine(row.TrimEnd());
        }

        Console.WriteLine($"  {Exhausted}: {ByKey(Exhausted, "0")}");
        lock (_gaugeLock)
        {
            Console.WriteLine($"  {UnavailableBackends} (peak): {Tiers(_gaugePeak)}");
            Console.WriteLine($"  {TimeUntilAvailable} (peak): {Seconds(_gaugePeak)}");
        }

        Console.WriteLine();
    }

    public void Dispose() => _listener.Dispose();

    private static string Tag(ReadOnlySpan<KeyValuePair<string, object?>> tags, string name)
    {
        foreach (var tag in tags)
        {
            if (tag.Key == name)
            {
                return Convert.ToString(tag.Value, CultureInfo.InvariantCulture) ?? string.Empty;
            }
        }

        return string.Empty;
    }

    private static string Tiers(Dictionary<string, double> gauges)
    {
        var tiers = gauges.Where(g => g.Key.StartsWith("priority ", StringComparison.Ordinal)).OrderBy(g => g.Key, StringComparer.Ordinal).ToList();
        return tiers.Count == 0
            ? "-"
            : string.Join(", ", tiers.Select(g => string.Create(CultureInfo.InvariantCulture, $"{g.Key}: {g.Value:0}")));
    }

    private static string Seconds(Dictionary<string, double> gauges)
        => gauges.TryGetValue(TimeUntilAvailable, out var seconds)
            ? string.Create(CultureInfo.InvariantCulture, $"{seconds:0.000} s")
            : "-";

    private static string Describe(List<(string Label, long Count)> values)
        => values.Count == 0 ? string.Empty : "(" + string.Join(", ", values.Select(v => $"{v.Label} {v.Count}")) + ")";

    private void OnCounter(Instrument instrument, long value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        // Key: "backend|label", where the label is the outcome or reason; exhausted answers are keyed by status code.
        var key = instrument.Name switch
        {
            Attempts => Tag(tags, "backend.name") + "|" + Tag(tags, "outcome"),
            Failovers => Tag(tags, "backend.name") + "|",
            MarkedUnavailable => Tag(tags, "backend.name") + "|" + Tag(tags, "reason"),
            _ => Tag(tags, "http.response.status_code"),
        };
        _totals.AddOrUpdate((instrument.Name, key), value, (_, total) => total + value);
    }

    private void OnGauge(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var key = instrument.Name == UnavailableBackends ? "priority " + Tag(tags, "backend.priority") : instrument.Name;
        lock (_gaugeLock)
        {
            _gaugeNow[key] = Math.Max(value, _gaugeNow.GetValueOrDefault(key));
            _gaugePeak[key] = Math.Max(value, _gaugePeak.GetValueOrDefault(key));
        }
    }

    private void Observe()
    {
        lock (_gaugeLock)
        {
            _gaugeNow.Clear();
        }

        _listener.RecordObservableInstruments();
    }

    private List<(string Label, long Count)> Values(string instrument, string backend)
        => [.. _totals
            .Where(entry => entry.Key.Instrument == instrument && entry.Key.Key.StartsWith(backend + "|", StringComparison.Ordinal))
            .Select(entry => (Label: entry.Key.Key[(backend.Length + 1)..], Count: entry.Value))
            .OrderBy(value => value.Label switch { "returned" => 0, "throttled" => 1, _ => 2 })
            .ThenBy(value => value.Label, StringComparer.Ordinal)];

    private string PerBackend(string instrument)
    {
        var line = new StringBuilder();
        foreach (var backend in _backends)
        {
            var values = Values(instrument, backend.Name);
            if (values.Count > 0)
            {
                line.Append(CultureInfo.InvariantCulture, $"{backend.Name} ");
                line.AppendJoin(' ', values.Select(v => v.Label.Length == 0 ? $"{v.Count}" : $"{v.Count} {v.Label}"));
                line.Append("   ");
            }
        }

        return line.Length == 0 ? "none" : line.ToString().TrimEnd();
    }

    private string ByKey(string instrument, string none)
    {
        var values = _totals.Where(entry => entry.Key.Instrument == instrument).OrderBy(entry => entry.Key.Key, StringComparer.Ordinal).ToList();
        return values.Count == 0
            ? none
            : string.Join(", ", values.Select(entry => $"{entry.Value} x {entry.Key.Key}"));
    }
}
