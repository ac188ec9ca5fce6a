namespace Polly.PriorityRouting;

internal static class PriorityRoutingHandlerNames
{
    public const string PipelineSuffix = "priority-routing";

    /// <summary>
    /// The name of a client's options and pipeline, as <c>AddStandardResilienceHandler</c> does it; for a handler
    /// registered for every client (<c>ConfigureHttpClientDefaults</c>), <paramref name="clientName"/> is <see langword="null"/>.
    /// </summary>
    public static string OptionsName(string? clientName) => $"{clientName}-{PipelineSuffix}";
}
