namespace Polly.PriorityRouting;

/// <summary>
/// A backend's secret headers for one attempt, carried in the request options so that they are applied below
/// <see cref="System.Net.Http"/> logging handlers (whose structured state holds raw header values).
/// </summary>
internal sealed class AttemptCredentials(KeyValuePair<string, string>[] headers, string? bearerToken)
{
    public static readonly HttpRequestOptionsKey<AttemptCredentials> Key = new("Polly.PriorityRouting.AttemptCredentials");

    public void ApplyTo(HttpRequestMessage request)
    {
        foreach (var header in headers)
        {
            request.Headers.Remove(header.Key);
            request.Headers.TryAddWithoutValidation(header.Key, header.Value);
        }

        if (bearerToken is not null)
        {
            request.Headers.Remove("Authorization");
            request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + bearerToken);
        }
    }

    /// <summary>Never shows a value.</summary>
    public override string ToString() => "(credentials)";
}
