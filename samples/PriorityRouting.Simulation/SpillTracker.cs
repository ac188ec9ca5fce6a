namespace PriorityRouting.Simulation;

/// <summary>
/// Measures priority-1 utilisation while anything spills over: per refill window of the priority-1 backend, the units
/// it served and whether a lower tier served anything; the utilisation is taken over the windows that spilled.
/// </summary>
internal sealed class SpillTracker
{
    private readonly SimulatedBackend? _priorityOne;
    private readonly Dictionary<long, (long Units, bool Spilled)> _windows = [];

    public SpillTracker(IReadOnlyList<SimulatedBackend> backends)
    {
        var first = backends.Where(b => b.Spec.Priority == 1).ToList();

        // One priority-1 backend defines the windows (the scenarios have one).
        _priorityOne = first.Count == 1 ? first[0] : null;
    }

    public void Served(SimulatedBackend backend, long units, DateTimeOffset now)
    {
        if (_priorityOne is null)
        {
            return;
        }

        _priorityOne.Bucket.Advance(now);
        var window = _priorityOne.Bucket.Refills;
        var entry = _windows.GetValueOrDefault(window);
        _windows[window] = backend == _priorityOne ? (entry.Units + units, entry.Spilled) : (entry.Units, true);
    }

    /// <summary>Returns the utilisation over the spilled windows, the first and last (partial) measured windows left out; NaN when none spilled.</summary>
    public double Utilisation()
    {
        if (_priorityOne is null || _windows.Count < 3)
        {
            return double.NaN;
        }

        var first = _windows.Keys.Min();
        var last = _windows.Keys.Max();
        var spilled = _windows.Where(w => w.Key != first && w.Key != last && w.Value.Spilled).ToList();
        return spilled.Count == 0 ? double.NaN : (double)spilled.Sum(w => w.Value.Units) / (spilled.Count * _priorityOne.Bucket.Limit);
    }
}
