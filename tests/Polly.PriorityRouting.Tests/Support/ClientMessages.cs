using System.Text.RegularExpressions;

namespace Polly.PriorityRouting.Tests.Support;

/// <summary>What an <c>OptionsValidationException</c> of the handler says: each failure names its client.</summary>
internal static class ClientMessages
{
    /// <summary>
    /// Prefixes each of <paramref name="failures"/> (each ends with a period; joined by "; ", as the exception joins
    /// them) with the client.
    /// </summary>
    public static string Of(string client, string failures)
        => string.Join("; ", Regex.Split(failures, "(?<=\\.); ").Select(failure => $"HttpClient '{client}': {failure}"));
}
