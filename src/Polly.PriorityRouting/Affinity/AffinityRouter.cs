using System.Net;
using System.Text;
using System.Text.Json;

namespace Polly.PriorityRouting;

/// <summary>
/// Hard affinity for one pipeline: pins a request that refers to an id to the backend holding it, and learns ids from
/// the answers that create them (and forgets them when deleted).
/// </summary>
/// <remarks>
/// Routing itself stays in <see cref="BackendPool"/>: a pinned request marks every other backend as tried, so tiers,
/// throttles, ejections and the exhausted answer apply to the pinned backend exactly as to any other.
/// </remarks>
internal sealed class AffinityRouter
{
    /// <summary>The error code of the answer to a request whose id lives on a backend no longer configured.</summary>
    public const string NotConfiguredCode = "affinity_backend_not_configured";

    private readonly IAffinityStore _store;
    private readonly AffinityOptions _options;
    private readonly AffinityIdExtractor _extractor;
    private readonly Dictionary<string, RoutedBackend> _byIdentity;

    public AffinityRouter(AffinityOptions options, IAffinityStore store, IReadOnlyList<RoutedBackend> backends)
    {
        // A snapshot: options objects are mutable and may be rebound by a reload.
        _options = new AffinityOptions
        {
            ResponseLifetime = options.ResponseLifetime,
            ResourceLifetime = options.ResourceLifetime,
            StickyLifetime = options.StickyLifetime,
        };
        _extractor = options.IdExtractor;
        _store = store;
        _byIdentity = new Dictionary<string, RoutedBackend>(StringComparer.Ordinal);
        foreach (var backend in backends)
        {
            _byIdentity.TryAdd(backend.StateKey.Backend, backend);
        }
    }

    public IAffinityStore Store => _store;

    /// <summary>Gets a value indicating whether the extractor reads the body's bytes (a custom one), not only its facts.</summary>
    public bool ReadsBodyBytes => AffinityRequestReader.ReadsBytes(_extractor);

    /// <summary>
    /// Finds what the request refers to and where it lives: at most one store read, and none for a request without ids.
    /// </summary>
    /// <param name="request">The caller's request.</param>
    /// <param name="body">Its body (read only if the extractor asks for it), or <see langword="null"/>.</param>
    /// <param name="stickyKey">The soft-affinity key of the request's hints, if any.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <remarks>A request without ids or key (most) is resolved synchronously, with no state machine.</remarks>
    public ValueTask<AffinityDecision> ResolveAsync(HttpRequestMessage request, RequestBody? body, string? stickyKey, CancellationToken cancellationToken)
    {
        var parsed = AffinityRequestReader.Read(_extractor, request, body);
        if (!parsed.Referenced.IsEmpty)
        {
            return ResolveReferencedAsync(parsed, cancellationToken);
        }

        var key = stickyKey is { Length: > 0 and <= AffinityRequestParser.MaxStickyKeyLength } ? stickyKey : parsed.StickyKey;
        return key is null ? new(new AffinityDecision(parsed, null, null)) : ResolveStickyAsync(parsed, key, cancellationToken);
    }

    /// <summary>Finds the backend holding the id the request refers to: one store read.</summary>
    private async ValueTask<AffinityDecision> ResolveReferencedAsync(AffinityRequest parsed, CancellationToken cancellationToken)
    {
        string? holder;
        try
        {
            holder = await _store.FindAsync(parsed.Referenced.Value, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception) when (!cancellationToken.IsCancellationRequested)
        {
            // A failing store never fails a request: it is routed as on a replica that has never seen the id.
            holder = null;
        }

        if (holder is null)
        {
            return new AffinityDecision(parsed, null, null);
        }

        return _byIdentity.TryGetValue(holder, out var backend)
            ? new AffinityDecision(parsed, backend, null)
            : new AffinityDecision(parsed, null, holder);
    }

    /// <summary>
    /// Learns from an answer that goes back to the caller: a created id is read as the body flows (and pinned before
    /// the caller can read it); a deleted id is forgotten.
    /// </summary>
    public async ValueTask ObserveAsync(AffinityDecision decision, HttpResponseMessage response, RoutedBackend backend, CancellationToken cancellationToken)
    {
        if (!response.IsSuccessStatusCode)
        {
            return;
        }

        var request = decision.Request;
        if (request.DeletesReferenced)
        {
            try
            {
                await _store.RemoveAsync(request.Referenced.Value, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception) when (!cancellationToken.IsCancellationRequested)
            {
                // The pin expires on its own; until then requests go to the backend that answers 404 for it.
            }
        }

        if (decision.StickyKey is { } key)
        {
            // Sliding: every success re-pins the key to the backend that served it (where it moved to, after a
            // failover). Not awaited: stickiness is an optimisation, the answer does not wait for it.
            _ = PinStickyAsync(key, backend.StateKey.Backend, _options.StickyLifetime).AsTask();
        }

        if (request.Creates is { } kind)
        {
            await LearnCreatedAsync(request, kind, response, backend.StateKey.Backend, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Pins the id a successful answer created: read from its headers by the extractor (pinned now), else from its body
    /// as it flows to the caller.
    /// </summary>
    private async ValueTask LearnCreatedAsync(AffinityRequest request, AffinityIdKind kind, HttpResponseMessage response, string identity, CancellationToken cancellationToken)
    {
        var lifetime = kind.LifetimeUnder(_options);
        string? fromHeaders;
        try
        {
            fromHeaders = _extractor.ReadCreatedId(response, request);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            fromHeaders = null;
        }

        if (fromHeaders is not null)
        {
            if (AffinityId.IsValid(fromHeaders))
            {
                await PinAsync(fromHeaders, identity, lifetime, cancellationToken).ConfigureAwait(false);
            }
        }
        else if (response.Content is { } content and not AffinitySniffingContent)
        {
            // (Already sniffing: the same response object came back from a transport that returns it again.)
            response.Content = new AffinitySniffingContent(content, AffinityAnswerIds.Of(request), (id, token) => PinAsync(id, identity, lifetime, token));
        }
    }

    /// <summary>Soft affinity: the backend a request's key was last served by, if any.</summary>
    private async ValueTask<AffinityDecision> ResolveStickyAsync(AffinityRequest parsed, string key, CancellationToken cancellationToken)
    {
        string? holder;
        try
        {
            holder = await _store.FindStickyAsync(key, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception) when (!cancellationToken.IsCancellationRequested)
        {
            holder = null;
        }

        var preferred = holder is not null && _byIdentity.TryGetValue(holder, out var backend) ? backend : null;
        return new AffinityDecision(parsed, null, null, key, preferred);
    }

    /// <summary>The answer to a request whose id lives on a backend that is no longer configured: nothing else holds it.</summary>
    public static HttpResponseMessage NotConfigured(AffinityDecision decision, HttpRequestMessage request)
    {
        var id = decision.Request.Referenced;
        var message = "The " + id.Kind.Description + " '" + id.Value + "' was created on backend '" + decision.MissingBackend +
            "', which is no longer configured. It exists on that backend only, so the request was sent to no other backend.";
        return new HttpResponseMessage(HttpStatusCode.NotFound)
        {
            RequestMessage = request,
            Content = new StringContent(
                "{\"error\":{\"message\":" + JsonSerializer.Serialize(message) + ",\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"" +
                NotConfiguredCode + "\"}}",
                Encoding.UTF8,
                "application/json"),
        };
    }

    private async ValueTask PinAsync(string id, string backend, TimeSpan lifetime, CancellationToken cancellationToken)
    {
        try
        {
            await _store.PinAsync(id, backend, lifetime, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // A store that cannot pin never breaks the answer: later requests with this id are routed normally.
        }
    }

    private async ValueTask PinStickyAsync(string key, string backend, TimeSpan lifetime)
    {
        try
        {
            await _store.PinStickyAsync(key, backend, lifetime, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Stickiness is an optimisation: the key's next request is routed normally.
        }
    }
}
