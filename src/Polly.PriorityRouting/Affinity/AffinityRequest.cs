namespace Polly.PriorityRouting;

/// <summary>What a request means for affinity: the id it refers to, the kind of id its answer creates, whether it deletes.</summary>
/// <param name="Referenced">The id the request refers to (routes it), or empty.</param>
/// <param name="Creates">The kind of id a successful answer creates (learned from that answer), or <see cref="AffinityKind.None"/>.</param>
/// <param name="Deletes">Whether a successful answer deletes <paramref name="Referenced"/>.</param>
/// <param name="StickyKey">The body's soft-affinity key (<c>prompt_cache_key</c>, else <c>user</c>), if any.</param>
internal readonly record struct AffinityRequest(AffinityId Referenced, AffinityKind Creates, bool Deletes, string? StickyKey = null)
{
    public bool IsEmpty => Referenced.IsEmpty && Creates == AffinityKind.None && StickyKey is null;
}
