namespace Polly.PriorityRouting;

/// <summary>
/// Chooses the backend of the next attempt: the best tier that still has an available backend open to the request, and within
/// that tier a weighted-random choice.
/// </summary>
/// <remarks>
/// The decision reads the store without locks and allocates nothing.
/// </remarks>
internal sealed partial class BackendSelector
{
    private const int MaskedTierSize = 64;

    private readonly RoutedBackend[] _backends;
    private readonly int[] _tierStarts;
    private readonly BackendAvailability _availability;
    private readonly Func<int, int> _randomizer;
    private readonly LatencyTracker? _latency;
    private readonly BackendBudgets? _budgets;

    /// <param name="backends">The backends, best tier first (see <see cref="BackendPool.Route"/>).</param>
    /// <param name="availability">Says which backends are in rotation.</param>
    /// <param name="randomizer">Returns a value in [0, bound).</param>
    /// <param name="latency">When set, the choice within a tier is latency-aware (see <see cref="LatencyTracker"/>).</param>
    /// <param name="budgets">The budget view admission reads, or <see langword="null"/> when budgets are off.</param>
    public BackendSelector(
        RoutedBackend[] backends,
        BackendAvailability availability,
        Func<int, int> randomizer,
        LatencyTracker? latency = null,
        BackendBudgets? budgets = null)
    {
        _budgets = budgets;
        _backends = backends;

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
        _availability = availability;
        _randomizer = randomizer;
        _latency = latency;
    }

    /// <summary>Gets the backends, best tier first.</summary>
    public IReadOnlyList<RoutedBackend> Backends => _backends;

    /// <summary>
    /// Returns the next backend: the best tier with a candidate (open to the request, in rotation, and — with a budget view — able
    /// to admit the request's cost), weighted-random within it.
    /// </summary>
    public RoutedBackend? SelectNext(in BackendSet closed, DateTimeOffset now, in RequestRoute route = default)
    {
        for (var tier = 0; tier < _tierStarts.Length - 1; tier++)
        {
            var start = _tierStarts[tier];
            var end = _tierStarts[tier + 1];
            var pick = _latency is not null
                ? PickByLatency(start, end, closed, now, route)
                : end - start <= MaskedTierSize
                    ? PickByCumulativeWeight(start, end, closed, now, route)
                    : PickByReservoir(start, end, closed, now, route);
            if (pick is not null)
            {
                return pick;
            }
        }

        return null;
    }

    /// <summary>
    /// Returns whether <paramref name="backend"/> is a candidate and no better tier has one: then choosing it costs the
    /// request nothing that priority routing promises.
    /// </summary>
    public bool IsBestChoice(RoutedBackend backend, in BackendSet closed, DateTimeOffset now, in RequestRoute route)
    {
        if (!IsCandidate(backend.Index, closed, now, route))
        {
            return false;
        }

        for (var i = 0; i < _backends.Length && _backends[i].Priority < backend.Priority; i++)
        {
            if (IsCandidate(i, closed, now, route))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// One read of the store per backend, remembered in a bit mask; then one draw in [0, total weight) mapped onto the
    /// cumulative weights of the candidates. A randomizer that answers 0 picks the first configured candidate.
    /// </summary>
    private RoutedBackend? PickByCumulativeWeight(int start, int end, in BackendSet closed, DateTimeOffset now, in RequestRoute route)
    {
        ulong candidates = 0;
        var totalWeight = 0;
        for (var i = start; i < end; i++)
        {
            if (IsCandidate(i, closed, now, route))
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
    private RoutedBackend? PickByReservoir(int start, int end, in BackendSet closed, DateTimeOffset now, in RequestRoute route)
    {
        RoutedBackend? pick = null;
        var seenWeight = 0;
        for (var i = end - 1; i >= start; i--)
        {
            if (!IsCandidate(i, closed, now, route))
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

    private bool IsCandidate(int index, in BackendSet closed, DateTimeOffset now, in RequestRoute route)
    {
        var backend = _backends[index];
        var partition = route.PartitionOn(backend);
        return !closed.Contains(index) && _availability.IsAvailable(backend, now, partition) &&
               (_budgets is null || _budgets.IsEmpty || _budgets.CanAdmit(backend.GetThrottleKey(partition), route.Cost, now, route.Held, backend.Quota, route.Headroom));
    }
}
