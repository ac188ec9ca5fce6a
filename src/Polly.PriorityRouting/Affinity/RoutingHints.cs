namespace Polly.PriorityRouting;

/// <summary>Applies a request's <see cref="PriorityRoutingHints"/> to the backends it may try.</summary>
internal static class RoutingHints
{
    /// <summary>
    /// Marks as tried every backend the hints exclude.
    /// </summary>
    /// <returns>Whether the hints narrow the backends; <paramref name="noFailover"/> says whether they forbid failover.</returns>
    public static bool Apply(PriorityRoutingHints? hints, IReadOnlyList<RoutedBackend> backends, ref TriedBackends tried, out bool noFailover)
    {
        noFailover = hints?.NoFailover == true;
        if (hints is null || (hints.OnlyBackends is null && hints.ExcludedBackends is null && hints.MaxPriority is null))
        {
            return noFailover;
        }

        foreach (var backend in backends)
        {
            if ((hints.OnlyBackends is { } only && !only.Contains(backend.Name, StringComparer.Ordinal)) ||
                (hints.ExcludedBackends is { } excluded && excluded.Contains(backend.Name, StringComparer.Ordinal)) ||
                (hints.MaxPriority is { } maxPriority && backend.Priority > maxPriority))
            {
                tried.Add(backend.Index);
            }
        }

        return true;
    }
}
