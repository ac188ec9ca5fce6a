namespace Polly.PriorityRouting;

internal sealed partial class BackendSelector
{
    /// <summary>
    /// Latency-aware choice within a tier: the same weighted draw as <see cref="PickByCumulativeWeight"/>, over weights
    /// scaled by <see cref="LatencyTracker.ScaleWeight"/> against the fastest candidate. The scaled weights are read once
    /// into a stack buffer, so the draw is exact even while other requests update the averages.
    /// </summary>
    private RoutedBackend? PickByLatency(int start, int end, in BackendSet closed, DateTimeOffset now, in RequestRoute route)
    {
        if (end - start > MaskedTierSize)
        {
            return PickWideByLatency(start, end, closed, now, route);
        }

        var latency = _latency!;
        ulong candidates = 0;
        var fastest = double.PositiveInfinity;
        for (var i = start; i < end; i++)
        {
            if (IsCandidate(i, closed, now, route))
            {
                candidates |= 1UL << (i - start);
                fastest = Math.Min(fastest, NaNAsInfinity(latency.GetAverage(i)));
            }
        }

        if (candidates == 0)
        {
            return null;
        }

        Span<int> weights = stackalloc int[MaskedTierSize];
        long totalWeight = 0;
        for (var i = start; i < end; i++)
        {
            if ((candidates & (1UL << (i - start))) != 0)
            {
                var weight = LatencyTracker.ScaleWeight(_backends[i].Weight, latency.GetAverage(i), fastest);
                weights[i - start] = weight;
                totalWeight += weight;
            }
        }

        // At most 64 × 1000 × 1000: an int.
        var draw = _randomizer((int)totalWeight);
        RoutedBackend? last = null;
        for (var i = start; candidates != 0; i++, candidates >>= 1)
        {
            if ((candidates & 1) == 0)
            {
                continue;
            }

            last = _backends[i];
            draw -= weights[i - start];
            if (draw < 0)
            {
                break;
            }
        }

        return last;
    }

    /// <summary>Tiers wider than the mask: the fastest candidate first, then weighted reservoir sampling on scaled weights.</summary>
    private RoutedBackend? PickWideByLatency(int start, int end, in BackendSet closed, DateTimeOffset now, in RequestRoute route)
    {
        var latency = _latency!;
        var fastest = double.PositiveInfinity;
        for (var i = start; i < end; i++)
        {
            if (IsCandidate(i, closed, now, route))
            {
                fastest = Math.Min(fastest, NaNAsInfinity(latency.GetAverage(i)));
            }
        }

        RoutedBackend? pick = null;
        var seenWeight = 0;
        for (var i = end - 1; i >= start; i--)
        {
            if (!IsCandidate(i, closed, now, route))
            {
                continue;
            }

            var weight = LatencyTracker.ScaleWeight(_backends[i].Weight, latency.GetAverage(i), fastest);
            seenWeight = (int)Math.Min(int.MaxValue, (long)seenWeight + weight);
            if (pick is null || _randomizer(seenWeight) < weight)
            {
                pick = _backends[i];
            }
        }

        return pick;
    }

    private static double NaNAsInfinity(double average) => double.IsNaN(average) ? double.PositiveInfinity : average;
}
