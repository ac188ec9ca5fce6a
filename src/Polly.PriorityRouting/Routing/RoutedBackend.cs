using System.Collections.Concurrent;

namespace Polly.PriorityRouting;

/// <summary>
/// The immutable runtime view of one <see cref="PriorityBackend"/>, precomputed once per pipeline so that an attempt
/// only concatenates strings.
/// </summary>
internal sealed class RoutedBackend
{
    public RoutedBackend(PriorityBackend backend, int index)
    {
        var address = backend.BaseAddress!;
        Name = backend.GetEffectiveName()!;
        Priority = backend.Priority;
        Weight = backend.Weight;
        Index = index;

        // "https://apim.example.net/team-a/" -> "https://apim.example.net/team-a": the request path starts with '/'.
        var path = address.GetComponents(UriComponents.Path | UriComponents.KeepDelimiter, UriFormat.UriEscaped).TrimEnd('/');
        AddressPrefix = address.GetComponents(UriComponents.SchemeAndServer, UriFormat.UriEscaped) + path;
        var query = address.GetComponents(UriComponents.Query, UriFormat.UriEscaped);
        Query = string.IsNullOrEmpty(query) ? null : query;
        Headers = [.. backend.Headers];
        BearerTokenProvider = backend.BearerTokenProvider;
    }

    private const int MaxCachedPartitionKeys = 1024;

    private const int MaxCachedAttemptUris = 1024;

    private readonly ConcurrentDictionary<string, string> _partitionKeys = new(StringComparer.Ordinal);

    // Apps call a handful of URLs (deployments x operations): the attempt URI of each is built once per backend.
    private readonly ConcurrentDictionary<string, Uri> _attemptUris = new(StringComparer.Ordinal);

    public string Name { get; }

    public int Priority { get; }

    public int Weight { get; }

    public int Index { get; }

    /// <summary>Gets scheme, host, port and base path, without a trailing slash.</summary>
    public string AddressPrefix { get; }

    /// <summary>Gets the backend's own query string without '?', or <see langword="null"/>.</summary>
    public string? Query { get; }

    public KeyValuePair<string, string>[] Headers { get; }

    public Func<CancellationToken, ValueTask<string>>? BearerTokenProvider { get; }

    public bool HasHeader(string name)
    {
        if (BearerTokenProvider is not null && string.Equals(name, "Authorization", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        foreach (var header in Headers)
        {
            if (string.Equals(header.Key, name, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Returns the request's path and query on this backend; cached per distinct request URI, up to a bound.</summary>
    public Uri GetAttemptUri(Uri? original)
    {
        if (original is not { IsAbsoluteUri: true })
        {
            return AttemptRequest.BuildUri(original, this);
        }

        if (_attemptUris.TryGetValue(original.OriginalString, out var cached))
        {
            return cached;
        }

        var uri = AttemptRequest.BuildUri(original, this);
        if (_attemptUris.Count < MaxCachedAttemptUris)
        {
            _attemptUris.TryAdd(original.OriginalString, uri);
        }

        return uri;
    }

    /// <summary>
    /// Returns the store key a throttle of this backend is kept under: its partition's when the request has one, since
    /// the service throttles per partition; else the backend's own name.
    /// </summary>
    public string GetThrottleKey(string? partition) => partition is null ? Name : GetPartitionKey(partition);

    /// <summary>Returns the store key of a throttle partition on this backend: <c>{name}#{partition}</c>.</summary>
    public string GetPartitionKey(string partition)
    {
        if (_partitionKeys.TryGetValue(partition, out var key))
        {
            return key;
        }

        key = string.Concat(Name, PriorityRoutingConstants.PartitionSeparator.ToString(), partition);

        // Partitions are few (deployments); the cap keeps a misbehaving partition function from growing memory.
        if (_partitionKeys.Count < MaxCachedPartitionKeys)
        {
            _partitionKeys.TryAdd(partition, key);
        }

        return key;
    }

    /// <summary>Returns the name only: header values are secrets.</summary>
    public override string ToString() => Name;
}
