namespace Polly.PriorityRouting;

/// <summary>
/// Per-request routing hints, set on <see cref="HttpRequestMessage.Options"/>: they narrow the backends one request may
/// use, on top of priorities, throttles and affinity.
/// </summary>
/// <example>
/// <code>
/// request.Options.Set(PriorityRoutingRequestOptions.OnlyBackends, ["ptu-eastus"]);
/// request.Options.Set(PriorityRoutingRequestOptions.NoFailover, true);
/// </code>
/// </example>
/// <remarks>
/// When the hints leave no backend available, the request gets the exhausted answer computed over the backends they
/// allow (a hint that excludes the backend holding a request's id leaves none: 503).
/// </remarks>
public static class PriorityRoutingRequestOptions
{
    /// <summary>Only these backends (by <see cref="PriorityBackend.Name"/>) may serve the request.</summary>
    public static readonly HttpRequestOptionsKey<IReadOnlyCollection<string>> OnlyBackends = new("Polly.PriorityRouting.OnlyBackends");

    /// <summary>These backends (by <see cref="PriorityBackend.Name"/>) never serve the request.</summary>
    public static readonly HttpRequestOptionsKey<IReadOnlyCollection<string>> ExcludedBackends = new("Polly.PriorityRouting.ExcludedBackends");

    /// <summary>Only backends of this priority or better (a lower or equal number) may serve the request.</summary>
    public static readonly HttpRequestOptionsKey<int> MaxPriority = new("Polly.PriorityRouting.MaxPriority");

    /// <summary>
    /// A soft-affinity key (a session, a conversation, a prompt-cache key): requests with the same key stay on one
    /// backend for <see cref="AffinityOptions.StickyLifetime"/> after the last one, and move when it is unavailable.
    /// Takes precedence over the body's <c>prompt_cache_key</c> and <c>user</c>.
    /// </summary>
    public static readonly HttpRequestOptionsKey<string> AffinityKey = new("Polly.PriorityRouting.AffinityKey");

    /// <summary>
    /// When <see langword="true"/>, the request is sent to one backend only: if that attempt fails, the caller gets the
    /// exhausted answer with that backend's <c>Retry-After</c> instead of a failover.
    /// </summary>
    public static readonly HttpRequestOptionsKey<bool> NoFailover = new("Polly.PriorityRouting.NoFailover");
}
