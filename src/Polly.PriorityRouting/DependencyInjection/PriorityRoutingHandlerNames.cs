namespace Polly.PriorityRouting;

internal static class PriorityRoutingHandlerNames
{
    public const string PipelineSuffix = "priority-routing";

    /// <summary>
    /// The BaseAddress the handler gives a client that has none, so that relative request URIs pass
    /// <see cref="HttpClient"/>'s check; the routing replaces scheme, host and port on every attempt, and nothing
    /// resolves the reserved <c>.invalid</c> domain should a request ever bypass it.
    /// </summary>
    public static readonly Uri PlaceholderBaseAddress = new("http://priority-routing.invalid/");

    /// <summary>
    /// The name of a client's options and pipeline, as <c>AddStandardResilienceHandler</c> does it; for a handler
    /// registered for every client (<c>ConfigureHttpClientDefaults</c>), <paramref name="clientName"/> is <see langword="null"/>.
    /// </summary>
    public static string OptionsName(string? clientName) => $"{clientName}-{PipelineSuffix}";

    /// <summary>Names the client of a handler's options in messages: <c>HttpClient 'aoai'</c>.</summary>
    public static string DescribeClient(string? optionsName)
    {
        var suffix = "-" + PipelineSuffix;
        var client = optionsName is not null && optionsName.EndsWith(suffix, StringComparison.Ordinal) ? optionsName[..^suffix.Length] : optionsName;
        return string.IsNullOrEmpty(client) ? "every HttpClient (ConfigureHttpClientDefaults)" : $"HttpClient '{client}'";
    }
}
