namespace Polly.PriorityRouting;

/// <summary>
/// Keeps which backend holds a piece of server-side state (a stored response, a file, a batch, …), by the id the
/// backend gave it, so that requests referring to that id are routed to that backend only.
/// </summary>
/// <remarks>
/// <para>
/// Separate from <see cref="IBackendStateStore"/> on purpose: throttle deadlines are few, short-lived and read on every
/// attempt; id pins are many, long-lived and read only by requests that carry an id.
/// </para>
/// <para>
/// Implementations must be thread-safe, bound what they hold (ids come from backends' answers and from callers), and
/// never fail a request: a store that cannot answer returns <see langword="null"/> (the request is routed normally) and
/// a pin that cannot be shared stays local.
/// </para>
/// <para>
/// Soft-affinity keys (<see cref="FindStickyAsync"/>, <see cref="PinStickyAsync"/>) are kept apart from ids, with a
/// bound of their own: they come from callers (<c>user</c>, <c>prompt_cache_key</c>), and however many distinct ones
/// arrive they must never evict an id, whose loss sends a follow-up to a backend that answers 404.
/// </para>
/// </remarks>
public interface IAffinityStore
{
    /// <summary>
    /// Finds the backend that holds an id: from local memory, and — for a distributed store — from the shared store
    /// when this process has never seen the id.
    /// </summary>
    /// <param name="id">The id, as the backend returned it.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The backend's identity (<see cref="BackendStateKey.Backend"/>), or <see langword="null"/> when unknown.</returns>
    ValueTask<string?> FindAsync(string id, CancellationToken cancellationToken);

    /// <summary>
    /// Records that <paramref name="backend"/> holds <paramref name="id"/> for <paramref name="timeToLive"/>.
    /// </summary>
    /// <param name="id">The id the backend returned.</param>
    /// <param name="backend">The backend's identity (<see cref="BackendStateKey.Backend"/>).</param>
    /// <param name="timeToLive">How long the pin is kept.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>A task that completes once every replica sharing the store can find the pin.</returns>
    ValueTask PinAsync(string id, string backend, TimeSpan timeToLive, CancellationToken cancellationToken);

    /// <summary>
    /// Forgets an id (its state was deleted on the backend).
    /// </summary>
    /// <param name="id">The id.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>A task that completes when the id is forgotten.</returns>
    ValueTask RemoveAsync(string id, CancellationToken cancellationToken);

    /// <summary>
    /// Finds the backend a soft-affinity key was last served by.
    /// </summary>
    /// <param name="key">The key, as the caller gave it (<see cref="PriorityRoutingHints.AffinityKey"/>, or the body's
    /// <c>prompt_cache_key</c> or <c>user</c>).</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The backend's identity (<see cref="BackendStateKey.Backend"/>), or <see langword="null"/> when unknown.</returns>
    ValueTask<string?> FindStickyAsync(string key, CancellationToken cancellationToken);

    /// <summary>
    /// Records that <paramref name="key"/> was last served by <paramref name="backend"/>, for
    /// <paramref name="timeToLive"/>; called on every success, so the lifetime slides.
    /// </summary>
    /// <param name="key">The soft-affinity key.</param>
    /// <param name="backend">The backend's identity (<see cref="BackendStateKey.Backend"/>).</param>
    /// <param name="timeToLive">How long the key keeps its backend.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>A task that completes when the key is recorded.</returns>
    ValueTask PinStickyAsync(string key, string backend, TimeSpan timeToLive, CancellationToken cancellationToken);
}
