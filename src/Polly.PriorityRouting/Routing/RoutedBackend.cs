using System.Collections.Concurrent;

namespace Polly.PriorityRouting;

/// <summary>
/// The immutable runtime view of one <see cref="PriorityBackend"/>, precomputed once per pipeline so that an attempt
/// only concatenates strings.
/// </summary>
internal sealed class RoutedBackend
{
    private const int MaxCachedAttemptUris = 1024;

    // Headers that carry a caller's or a backend's credential. A backend with a credential of its own receives that one
    // only: a caller's api-key must never reach a backend that authenticates with a bearer token, and vice versa.
    private static readonly string[] CredentialHeaders = ["Authorization", "api-key", "Ocp-Apim-Subscription-Key", "x-api-key"];

    // Apps call a handful of URLs (deployments x operations): the attempt URI of each is built once per backend.
    private readonly ConcurrentDictionary<string, Uri> _attemptUris = new(StringComparer.Ordinal);

    public RoutedBackend(PriorityBackend backend, int index, BackendConcurrency? concurrency = null)
    {
        var address = backend.BaseAddress!;
        Name = backend.GetEffectiveName()!;
        StateKey = new BackendStateKey(backend.GetStateIdentity()!);
        Priority = backend.Priority;
        Weight = backend.Weight;
        Drained = backend.Drain;
        Index = index;
        AddressPrefix = PriorityBackend.GetLocation(address);
        var query = address.GetComponents(UriComponents.Query, UriFormat.UriEscaped);
        Query = string.IsNullOrEmpty(query) ? null : query;
        Headers = [.. backend.Headers];
        BearerTokenProvider = backend.BearerTokenProvider;
        HasCredential = BearerTokenProvider is not null || Headers.Any(header => IsCredentialHeader(header.Key));
        Credentials = AttemptCredentials.Of(Name, Headers, BearerTokenProvider);
        Models = BackendModelMap.Create(backend.Models);
        Quota = DeclaredQuota.Create(backend.TokensPerMinute, backend.RequestsPerMinute);
        InFlight = backend.MaxConcurrentRequests is { } cap && concurrency is not null ? new InFlightLimit(concurrency.CounterOf(StateKey), cap) : null;
    }

    /// <summary>Gets the budget the backend declares until its answers report one; <see langword="null"/> when none.</summary>
    public DeclaredQuota? Quota { get; }

    /// <summary>Gets the backend's cap on requests in flight from this process; <see langword="null"/> when none.</summary>
    public InFlightLimit? InFlight { get; }

    /// <summary>Gets the display name: logs, metrics, snapshots.</summary>
    public string Name { get; }

    /// <summary>Gets the key of the whole backend in the state store (its identity: name and address).</summary>
    public BackendStateKey StateKey { get; }

    public int Priority { get; }

    public int Weight { get; }

    /// <summary>Gets the position in the pipeline's backends, best tier first.</summary>
    public int Index { get; }

    /// <summary>Gets scheme, host, port and base path, without a trailing slash.</summary>
    public string AddressPrefix { get; }

    /// <summary>Gets the backend's own query string without '?', or <see langword="null"/>.</summary>
    public string? Query { get; }

    public KeyValuePair<string, string>[] Headers { get; }

    public Func<CancellationToken, ValueTask<string>>? BearerTokenProvider { get; }

    /// <summary>Gets the headers and token source applied to each attempt, or <see langword="null"/> when there are none.</summary>
    public AttemptCredentials? Credentials { get; }

    /// <summary>Gets the models the backend serves and its own names for them; <see langword="null"/>: every name, unchanged.</summary>
    public BackendModelMap? Models { get; }

    /// <summary>
    /// Gets a value indicating whether the backend is drained: it takes no new work except requests pinned to it by an
    /// id it holds (see <see cref="DrainStage"/>). Set from <see cref="PriorityBackend.Drain"/>.
    /// </summary>
    public bool Drained { get; init; }

    /// <summary>Gets a value indicating whether the backend authenticates with a key header or a bearer token of its own.</summary>
    public bool HasCredential { get; }

    /// <summary>
    /// Returns whether a header of the caller's request must not be sent to this backend: the backend sets it itself,
    /// or it is a credential and the backend has its own.
    /// </summary>
    public bool ReplacesCallerHeader(string name)
    {
        if (HasCredential && IsCredentialHeader(name))
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

    /// <summary>Returns the state key of a throttle of this backend: the request's partition's, else the whole backend's.</summary>
    public BackendStateKey GetThrottleKey(string? partition) => partition is null ? StateKey : StateKey.ForPartition(partition);

    /// <summary>Returns the name only: header values are secrets.</summary>
    public override string ToString() => Name;

    private static bool IsCredentialHeader(string name)
    {
        foreach (var credential in CredentialHeaders)
        {
            if (string.Equals(credential, name, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }
}
