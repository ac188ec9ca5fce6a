using System.Diagnostics.CodeAnalysis;

namespace Polly.PriorityRouting;

/// <summary>
/// Reads and rewrites the deployment name of an Azure OpenAI path: the segment after <c>/openai/deployments/</c>.
/// </summary>
internal static class DeploymentPath
{
    private const string DeploymentsSegment = "/openai/deployments/";

    /// <summary>Returns the unescaped deployment name of a request URI, absolute or relative.</summary>
    public static bool TryGetName(Uri? uri, [NotNullWhen(true)] out string? name)
    {
        name = null;
        if (uri is null)
        {
            return false;
        }

        var path = uri.IsAbsoluteUri ? uri.AbsolutePath : "/" + uri.OriginalString.TrimStart('/');
        if (!TryFind(path, out var start, out var length))
        {
            return false;
        }

        name = Unescape(path.AsSpan(start, length));
        return true;
    }

    /// <summary>
    /// Returns <paramref name="pathAndQuery"/> (escaped) with its deployment segment replaced by the backend's own
    /// name; unchanged when there is no such segment or the backend does not map it.
    /// </summary>
    public static string Rewrite(string pathAndQuery, BackendModelMap models)
    {
        if (!TryFind(pathAndQuery, out var start, out var length))
        {
            return pathAndQuery;
        }

        var segment = pathAndQuery.AsSpan(start, length);
        return models.Find(Unescape(segment)) is { } deployment ? Replace(pathAndQuery, start, length, deployment) : pathAndQuery;
    }

    /// <summary>
    /// Returns <paramref name="pathAndQuery"/> (escaped) with its deployment segment replaced by <paramref name="deployment"/>
    /// (a model fallback); unchanged when there is no such segment.
    /// </summary>
    public static string Rewrite(string pathAndQuery, ModelDeployment deployment)
        => TryFind(pathAndQuery, out var start, out var length) ? Replace(pathAndQuery, start, length, deployment) : pathAndQuery;

    private static string Replace(string pathAndQuery, int start, int length, ModelDeployment deployment)
        => pathAndQuery.AsSpan(start, length).SequenceEqual(deployment.PathSegment)
            ? pathAndQuery
            : string.Concat(pathAndQuery.AsSpan(0, start), deployment.PathSegment, pathAndQuery.AsSpan(start + length));

    private static string Unescape(ReadOnlySpan<char> segment)
#if NET9_0_OR_GREATER
        => Uri.UnescapeDataString(segment);
#else
        => Uri.UnescapeDataString(segment.ToString());
#endif

    /// <summary>Finds the deployment segment in the path part (before any query or fragment).</summary>
    private static bool TryFind(string pathAndQuery, out int start, out int length)
    {
        var pathEnd = pathAndQuery.AsSpan().IndexOfAny('?', '#');
        var path = pathEnd < 0 ? pathAndQuery.AsSpan() : pathAndQuery.AsSpan(0, pathEnd);
        start = path.IndexOf(DeploymentsSegment, StringComparison.OrdinalIgnoreCase);
        if (start < 0)
        {
            length = 0;
            return false;
        }

        start += DeploymentsSegment.Length;
        var end = path[start..].IndexOf('/');
        length = end < 0 ? path.Length - start : end;
        return length > 0;
    }
}
