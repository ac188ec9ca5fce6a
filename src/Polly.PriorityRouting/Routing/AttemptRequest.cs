namespace Polly.PriorityRouting;

/// <summary>
/// Builds the request of one attempt from the caller's original request, so that nothing leaks between attempts.
/// </summary>
internal static class AttemptRequest
{
    /// <summary>
    /// Creates the request for <paramref name="backend"/>: the backend's scheme, host, port and base path applied
    /// exactly once to the original path and query, the original headers and options. The backend's own headers and
    /// token are applied by <see cref="AttemptCredentials"/>: carried in the request's options when
    /// <paramref name="deferCredentials"/> (for <see cref="BackendCredentialsHandler"/>), else by the caller.
    /// </summary>
    /// <remarks>
    /// The content object is shared with the original request (it is made replayable first, see
    /// <see cref="PrepareContentAsync"/>), so the attempt request must never be disposed: that would dispose the body.
    /// <paramref name="content"/>, when given, replaces it for this attempt (the body with the backend's model name).
    /// </remarks>
    public static HttpRequestMessage Create(
        HttpRequestMessage original,
        RoutedBackend backend,
        bool deferCredentials = false,
        HttpContent? content = null)
    {
        var request = new HttpRequestMessage(original.Method, backend.GetAttemptUri(original.RequestUri))
        {
            Version = original.Version,
            VersionPolicy = original.VersionPolicy,
            Content = content ?? original.Content,
        };

        foreach (var header in original.Headers.NonValidated)
        {
            // Host names the placeholder; headers the backend sets itself are replaced, never merged, and a backend with
            // its own credential never receives the caller's.
            if (string.Equals(header.Key, "Host", StringComparison.OrdinalIgnoreCase) || backend.ReplacesCallerHeader(header.Key))
            {
                continue;
            }

            request.Headers.AddAsStored(header.Key, header.Value);
        }

        var options = (IDictionary<string, object?>)request.Options;
        foreach (var option in original.Options)
        {
            options[option.Key] = option.Value;
        }

        if (deferCredentials && backend.Credentials is { } credentials)
        {
            // Applied by BackendCredentialsHandler below the logging handlers.
            request.Options.Set(AttemptCredentials.Key, credentials);
        }

        return request;
    }

    public static Uri BuildUri(Uri? original, RoutedBackend backend)
    {
        string pathAndQuery;
        if (original is null)
        {
            pathAndQuery = "/";
        }
        else if (original.IsAbsoluteUri)
        {
            pathAndQuery = original.GetComponents(UriComponents.PathAndQuery, UriFormat.UriEscaped);
        }
        else
        {
            pathAndQuery = original.OriginalString.StartsWith('/') ? original.OriginalString : "/" + original.OriginalString;
        }

        if (backend.Models is { } models)
        {
            // The backend's own deployment name in /openai/deployments/{name}/ (cached with the attempt URI).
            pathAndQuery = DeploymentPath.Rewrite(pathAndQuery, models);
        }

        if (backend.Query is null)
        {
            return new Uri(backend.AddressPrefix + pathAndQuery, UriKind.Absolute);
        }

        // The backend's own query (e.g. "api-version=...") comes first, the request's follows.
        var queryStart = pathAndQuery.IndexOf('?', StringComparison.Ordinal);
        var combined = queryStart < 0
            ? string.Concat(backend.AddressPrefix, pathAndQuery, "?", backend.Query)
            : string.Concat(
                backend.AddressPrefix,
                pathAndQuery.AsSpan(0, queryStart),
                "?" + backend.Query + "&",
                pathAndQuery.AsSpan(queryStart + 1));

        return new Uri(combined, UriKind.Absolute);
    }

    /// <summary>
    /// Makes the request body replayable on every attempt, an outer retry's included, and reads it now, so that a body
    /// that cannot be read fails as the caller's own error before any backend is involved. Byte-array based contents
    /// (string, form, bytes) are replayable as they are; any other content (<see cref="StreamContent"/>, JSON, …) is
    /// buffered once. Buffering an already buffered content does nothing.
    /// </summary>
    public static ValueTask PrepareContentAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (request.Content is null or ByteArrayContent or ReadOnlyMemoryContent)
        {
            return default;
        }

        // A synchronous Send blocks on this task, which is what a synchronous caller asked for.
#if NET9_0_OR_GREATER
        return new ValueTask(request.Content.LoadIntoBufferAsync(cancellationToken));
#else
        return new ValueTask(request.Content.LoadIntoBufferAsync());
#endif
    }
}
