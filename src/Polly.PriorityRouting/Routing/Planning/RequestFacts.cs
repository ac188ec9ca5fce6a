namespace Polly.PriorityRouting;

/// <summary>
/// What one request says about where it may go, read once before the plan's stages run: its model, what affinity
/// found for it, and the caller's hints.
/// </summary>
internal readonly struct RequestFacts(HttpRequestMessage original, ModelRequest? model, AffinityDecision affinity, PriorityRoutingHints? hints)
{
    /// <summary>Gets the caller's request.</summary>
    public HttpRequestMessage Original { get; } = original;

    /// <summary>Gets the request's logical model, or <see langword="null"/> when the pipeline maps no models.</summary>
    public ModelRequest? Model { get; } = model;

    /// <summary>Gets what affinity decided (empty when affinity is off).</summary>
    public AffinityDecision Affinity { get; } = affinity;

    /// <summary>Gets the caller's per-request hints, or <see langword="null"/>.</summary>
    public PriorityRoutingHints? Hints { get; } = hints;
}
