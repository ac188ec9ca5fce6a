namespace Polly.PriorityRouting;

/// <summary>How affinity routes one request.</summary>
/// <param name="Request">What the request refers to, creates or deletes.</param>
/// <param name="Pinned">The only backend the request may go to, or <see langword="null"/> to route normally.</param>
/// <param name="MissingBackend">
/// The identity of the backend that holds the referenced id when that backend is no longer configured, else
/// <see langword="null"/>.
/// </param>
/// <param name="StickyKey">The soft-affinity key of the request (from its options or body), if it has no hard pin.</param>
/// <param name="Preferred">The backend the soft-affinity key is on, if configured.</param>
internal readonly record struct AffinityDecision(
    AffinityRequest Request, RoutedBackend? Pinned, string? MissingBackend, string? StickyKey = null, RoutedBackend? Preferred = null)
{
    public bool IsEmpty => Request.IsEmpty && StickyKey is null;
}
