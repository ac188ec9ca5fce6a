namespace Polly.PriorityRouting;

/// <summary>
/// Per-request routing hints, set on <see cref="HttpRequestMessage.Options"/> under
/// <see cref="PriorityRoutingRequestOptions.Hints"/>: they narrow the backends one request may use, on top of
/// priorities, throttles and affinity, and may give it a soft-affinity key.
/// </summary>
/// <remarks>
/// When the hints leave no backend available, the request gets the exhausted answer computed over the backends they
/// allow (a hint that excludes the backend holding a request's id leaves none: 503).
/// </remarks>
public sealed class PriorityRoutingHints
{
    /// <summary>Gets or sets the only backends (by <see cref="PriorityBackend.Name"/>) that may serve the request.</summary>
    public IReadOnlyCollection<string>? OnlyBackends { get; set; }

    /// <summary>Gets or sets backends (by <see cref="PriorityBackend.Name"/>) that never serve the request.</summary>
    public IReadOnlyCollection<string>? ExcludedBackends { get; set; }

    /// <summary>Gets or sets the worst priority allowed: only backends of this priority or better (lower or equal).</summary>
    public int? MaxPriority { get; set; }

    /// <summary>
    /// Gets or sets a value indicating whether the request is sent to one backend only: if that attempt fails, the
    /// caller gets the exhausted answer with that backend's <c>Retry-After</c> instead of a failover.
    /// </summary>
    public bool NoFailover { get; set; }

    /// <summary>
    /// Gets or sets a value indicating whether the request stays on its model: neither
    /// <see cref="PriorityRoutingStrategyOptions.ModelFallbacks"/> nor
    /// <see cref="PriorityRoutingStrategyOptions.ContextWindowFallbacks"/> move it to another one.
    /// </summary>
    public bool NoModelFallback { get; set; }

    /// <summary>
    /// Gets or sets a value indicating whether the request is background work (a summary, an evaluation, a batch of
    /// embeddings) that yields to foreground requests: it uses a backend only while
    /// <see cref="PriorityRoutingStrategyOptions.BackgroundHeadroom"/> of the backend's known budget stays free after its
    /// cost, and with <see cref="PriorityRoutingStrategyOptions.MaxQueueWait"/> it waits behind foreground requests.
    /// </summary>
    /// <remarks>
    /// A backend whose budget is unknown admits it like any request. It narrows nothing else: the other hints, affinity
    /// (a pinned background request obeys the headroom of its backend, and waits for it), model fallbacks and streams
    /// apply as to any request. With a <see cref="PriorityRoutingStrategyOptions.BackgroundHeadroom"/> of 0 it has no
    /// effect.
    /// </remarks>
    public bool Background { get; set; }

    /// <summary>
    /// Gets or sets a soft-affinity key (a session, a conversation, a prompt-cache key): requests with the same key stay
    /// on one backend for <see cref="AffinityOptions.StickyLifetime"/> after the last one, and move when it is
    /// unavailable. Takes precedence over the body's <c>prompt_cache_key</c> and <c>user</c>.
    /// </summary>
    public string? AffinityKey { get; set; }
}
