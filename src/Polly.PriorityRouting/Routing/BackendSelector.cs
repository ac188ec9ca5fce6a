namespace Polly.PriorityRouting;

/// <summary>
/// Chooses the backend of the next attempt: the best tier that still has an available, untried backend, and within
/// that tier a weighted-random choice.
/// </summary>
/// <remarks>
/// The decision reads the store without locks and allocates nothing.
/// </remarks>
internal sealed class BackendSelector
{
    private const int MaskedTierSize = 64;

    private readonly RoutedBackend[] _backends;
    private readonly int[] _tierStarts;
    private readonly IBackendStateStore _store;
    private readonly Func<int, int> _randomizer;
    private readonly OutlierDetector? _detector;

    public BackendSelector(
        IReadOnlyList<PriorityBackend> backends,
        IBackendStateStore store,
        Func<int, int> randomizer,
        OutlierDetector? detector = null)
    {
        // Stable sort by priority: the configured order is kept within a tier.
        _backends = [.. backends
            .Select((backend, position) => (backend, position))
            .OrderBy(item => item.backend.Priority)
            .ThenBy(item => item.position)
            .Select((item, index) => new RoutedBackend(item.backend, index))];

        var starts = new List<int>();
        for (var i = 0; i < _backends.Length; i++)
        {
            if (i == 0 || _backends[i].Priority != _backends[i - 1].Priority)
            {
                starts.Add(i);
            }
        }

        starts.Add(_backends.Length);
        _tierStarts = [.. starts];
        _store = store;
        _randomizer = randomizer;
        _detector = detector;
    }

    public IReadOnlyList<RoutedBackend> Backends => _backends;

    public IBackendStateStore Store => _store;

    /// <summary>
    /// Returns whether a backend may take an attempt now: not marked (as a whole, nor for the request's throttle
    /// partition) and not being probed by another request after an ejection.
    /// </summary>
    public bool IsAvailable(RoutedBackend backend, DateTimeOffset now, string? partition = null)
        => !IsMarked(backend.Name, now)
           && (partition is null || !IsMarked(backend.GetPartitionKey(partition), now))
           && (_detector is null || !_detector.IsProbeInFlight(backend.Name));

    public RoutedBackend? SelectNext(in TriedBackends tried, DateTimeOffset now, string? partition = null)
    {
        for (var tier = 0; tier < _tierStarts.Length - 1; tier++)
        {
            var start = _tierStarts[tier];
            var end = _tierStarts[tier + 1];
            var pick = end - start <= MaskedTierSize
                ? PickByCumulativeWeight(start, end, tried, now, partition)
                : PickByReservoir(start, end, tried, now, partition);
            if (pick is not null)
            {
                return pick;
            }
        }

        return null;
    }

    /// <summary>
    /// One read of the store per backend, remembered in a bit mask; then one draw in [0, total weight) mapped onto the
    /// cumulative weights of the candidates. A randomizer that answers 0 picks the first configured candidate.
    /// </summary>
    private RoutedBackend? PickByCumulativeWeight(int start, int end, in TriedBackends tried, DateTimeOffset now, string? partition)
    {
        ulong candidates = 0;
        var totalWeight = 0;
        for (var i = start; i < end; i++)
        {
            if (IsCandidate(i, tried, now, partition))
            {
                candidates |= 1UL << (i - start);
                totalWeight += _backends[i].Weight;
            }
        }

        if (totalWeight == 0)
        {
            return null;
        }

        var draw = _randomizer(totalWeight);
        RoutedBackend? last = null;
        for (var i = start; candidates != 0; i++, candidates >>= 1)
        {
            if ((candidates & 1) == 0)
            {
                continue;
            }

            last = _backends[i];
            draw -= last.Weight;
            if (draw < 0)
            {
                break;
            }
        }

        return last;
    }

    /// <summary>
    /// Tiers wider than the mask: one pass of weighted reservoir sampling — each candidate replaces the pick with
    /// probability weight / (weights seen so far), which picks each with probability weight / total. Walking backwards
    /// keeps "a randomizer that answers 0 picks the first configured candidate".
    /// </summary>
    private RoutedBackend? PickByReservoir(int start, int end, in TriedBackends tried, DateTimeOffset now, string? partition)
    {
        RoutedBackend? pick = null;
        var seenWeight = 0;
        for (var i = end - 1; i >= start; i--)
        {
            if (!IsCandidate(i, tried, now, partition))
            {
                continue;
            }

            var backend = _backends[i];
            seenWeight += backend.Weight;
            if (pick is null || _randomizer(seenWeight) < backend.Weight)
            {
                pick = backend;
            }
        }

        return pick;
    }

    /// <summary>
    /// Computes the answer when nothing is left: the time until the soonest backend frees up (zero when one already
    /// has) and whether any pending unavailability comes from throttling.
    /// </summary>
    public (TimeSpan RetryAfter, bool Throttled) GetExhaustion(DateTimeOffset now, string? partition = null)
    {
        var soonest = TimeSpan.MaxValue;
        var throttled = false;
        foreach (var backend in _backends)
        {
            // A backend is back when both its own mark and its partition's mark have passed.
            var remaining = Remaining(backend.Name, now, ref throttled);
            if (partition is not null)
            {
                var partitionRemaining = Remaining(backend.GetPartitionKey(partition), now, ref throttled);
                remaining = partitionRemaining > remaining ? partitionRemaining : remaining;
            }

            if (remaining < soonest)
            {
                soonest = remaining;
            }
        }

        return (soonest == TimeSpan.MaxValue ? TimeSpan.Zero : soonest, throttled);
    }

    private TimeSpan Remaining(string key, DateTimeOffset now, ref bool throttled)
    {
        if (!TryRead(key, out var unavailability) || !unavailability.IsActiveAt(now))
        {
            return TimeSpan.Zero;
        }

        throttled |= unavailability.Reason == BackendUnavailableReason.Throttled;
        return unavailability.Until - now;
    }

    public bool IsMarked(string key, DateTimeOffset now)
        => TryRead(key, out var unavailability) && unavailability.IsActiveAt(now);

    private bool TryRead(string key, out BackendUnavailability unavailability)
    {
        try
        {
            return _store.TryGetUnavailability(key, out unavailability);
        }
        catch (Exception)
        {
            // A store that cannot answer fails open: the backend counts as available, and its own answer decides.
            unavailability = default;
            return false;
        }
    }

    private bool IsCandidate(int index, in TriedBackends tried, DateTimeOffset now, string? partition)
        => !tried.Contains(index) && IsAvailable(_backends[index], now, partition);
}
