namespace Polly.PriorityRouting;

/// <summary>
/// The key of per-request routing hints on <see cref="HttpRequestMessage.Options"/>.
/// </summary>
/// <example>
/// <code>
/// request.Options.Set(PriorityRoutingRequestOptions.Hints, new PriorityRoutingHints { OnlyBackends = ["ptu-eastus"], NoFailover = true });
/// </code>
/// </example>
/// <remarks>One key for every hint, so that a request without hints pays one dictionary read.</remarks>
public static class PriorityRoutingRequestOptions
{
    /// <summary>The routing hints of a request.</summary>
    public static readonly HttpRequestOptionsKey<PriorityRoutingHints> Hints = new("Polly.PriorityRouting.Hints");

    /// <summary>Reads the hints of a request, if any.</summary>
    internal static PriorityRoutingHints? Of(HttpRequestMessage request)
        => ((IReadOnlyDictionary<string, object?>)request.Options).Count > 0 && request.Options.TryGetValue(Hints, out var hints) ? hints : null;
}
