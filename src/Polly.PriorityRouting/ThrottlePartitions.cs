namespace Polly.PriorityRouting;

/// <summary>
/// Built-in values for <see cref="PriorityRoutingStrategyOptions.ThrottlePartitionKey"/>.
/// </summary>
public static class ThrottlePartitions
{
    private const string DeploymentsSegment = "/openai/deployments/";

    /// <summary>
    /// Gets a partition key provider for Azure OpenAI: the deployment name in <c>/openai/deployments/{name}/…</c>, so that
    /// a 429 for one deployment does not take another deployment on the same backend out of rotation. Requests without
    /// that segment are not partitioned.
    /// </summary>
    public static Func<HttpRequestMessage, string?> AzureOpenAIDeployment { get; } = GetAzureOpenAIDeployment;

    private static string? GetAzureOpenAIDeployment(HttpRequestMessage request)
    {
        if (request.RequestUri is not { } uri)
        {
            return null;
        }

        var path = uri.IsAbsoluteUri ? uri.AbsolutePath : PathOfRelative(uri.OriginalString);
        var start = path.IndexOf(DeploymentsSegment, StringComparison.OrdinalIgnoreCase);
        if (start < 0)
        {
            return null;
        }

        start += DeploymentsSegment.Length;
        var end = path.IndexOf('/', start);
        var name = end < 0 ? path[start..] : path[start..end];
        return name.Length == 0 ? null : Uri.UnescapeDataString(name);
    }

    // A relative URI has no AbsolutePath: its original string still carries the query and fragment, which are no part
    // of a deployment's name.
    private static string PathOfRelative(string relative)
    {
        var end = relative.AsSpan().IndexOfAny('?', '#');
        return "/" + (end < 0 ? relative : relative[..end]).TrimStart('/');
    }
}
