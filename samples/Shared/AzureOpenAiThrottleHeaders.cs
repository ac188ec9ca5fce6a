using System.Globalization;

namespace PriorityRouting.Samples;

/// <summary>
/// The headers Azure OpenAI puts on a 429, for the fake backends of the demo and the simulation (linked into both).
/// </summary>
internal static class AzureOpenAiThrottleHeaders
{
    /// <summary>Returns the throttle headers that tell a client to come back after <paramref name="retryAfter"/>.</summary>
    public static IEnumerable<KeyValuePair<string, string>> For(TimeSpan retryAfter)
    {
        // Retry-After is whole seconds (at least 1, as the service sends); the precise value rides in retry-after-ms.
        yield return new("retry-after", Math.Max(1, (long)Math.Ceiling(retryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture));
        yield return new("retry-after-ms", ((long)Math.Ceiling(retryAfter.TotalMilliseconds)).ToString(CultureInfo.InvariantCulture));
        yield return new("x-ratelimit-remaining-requests", "0");
        yield return new("x-ratelimit-reset-requests", retryAfter.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture) + "s");
    }
}
