namespace Polly.PriorityRouting;

/// <summary>Applies the <see cref="PriorityRoutingRequestOptions"/> of a request to the backends it may try.</summary>
internal static class RoutingHints
{
    /// <summary>
    /// Marks as tried every backend the request's hints exclude.
    /// </summary>
    /// <returns>Whether the request has any hint; <paramref name="noFailover"/> says whether it forbids failover.</returns>
    public static bool Apply(HttpRequestMessage request, IReadOnlyList<RoutedBackend> backends, ref TriedBackends tried, out bool noFailover)
    {
        var options = request.Options;
        if (((IReadOnlyDictionary<string, object?>)options).Count == 0)
        {
            noFailover = false;
            return false;
        }

        noFailover = options.TryGetValue(PriorityRoutingRequestOptions.NoFailover, out var single) && single;
        var hasOnly = options.TryGetValue(PriorityRoutingRequestOptions.OnlyBackends, out var only) && only is not null;
        var hasExcluded = options.TryGetValue(PriorityRoutingRequestOptions.ExcludedBackends, out var excluded) && excluded is not null;
        var hasMaxPriority = options.TryGetValue(PriorityRoutingRequestOptions.MaxPriority, out var maxPriority);
        if (!hasOnly && !hasExcluded && !hasMaxPriority)
        {
            return noFailover;
        }

        foreach (var backend in backends)
        {
            if ((hasOnly && !only!.Contains(backend.Name, StringComparer.Ordinal)) ||
                (hasExcluded && excluded!.Contains(backend.Name, StringComparer.Ordinal)) ||
                (hasMaxPriority && backend.Priority > maxPriority))
            {
                tried.Add(backend.Index);
            }
        }

        return true;
    }
}
