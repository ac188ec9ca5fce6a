using System.ComponentModel.DataAnnotations;

namespace Polly.PriorityRouting;

/// <summary>
/// One backend that the priority routing strategy can send a request to.
/// </summary>
/// <remarks>
/// This is configuration only: runtime state such as "throttled until" lives in the
/// <see cref="IBackendStateStore"/>, keyed by the backend's identity: its <see cref="Name"/> and its
/// <see cref="BaseAddress"/> (without query) together. Pipelines share what they learn about a backend only when both
/// match, so two unrelated clients that each call a different address <c>"primary"</c> never share state by accident.
/// </remarks>
public sealed class PriorityBackend
{
    private IDictionary<string, string> _headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
    private IDictionary<string, string> _models = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>
    /// Gets or sets the absolute <c>http</c> or <c>https</c> address of the backend.
    /// </summary>
    /// <remarks>
    /// The address may carry a base path (for example <c>https://apim.example.net/team-a/</c>): the path and query of
    /// each request are appended to it exactly once per attempt. The scheme, host and port of the request itself are a
    /// placeholder that the strategy replaces.
    /// </remarks>
    [Required]
    public Uri? BaseAddress { get; set; }

    /// <summary>
    /// Gets or sets the priority tier of the backend. Tier <c>1</c> is tried first; <c>2</c>, <c>3</c>, … are fallbacks.
    /// </summary>
    /// <value>The default value is <c>1</c>. The value must be at least <c>1</c>.</value>
    [Range(PriorityRoutingConstants.MinPriority, int.MaxValue)]
    public int Priority { get; set; } = PriorityRoutingConstants.DefaultPriority;

    /// <summary>
    /// Gets or sets the share of traffic the backend receives among the available backends of its tier.
    /// </summary>
    /// <value>The default value is <c>1</c>. The value must be between <c>1</c> and <c>1000</c>.</value>
    [Range(PriorityRoutingConstants.MinWeight, PriorityRoutingConstants.MaxWeight)]
    public int Weight { get; set; } = PriorityRoutingConstants.DefaultWeight;

    /// <summary>
    /// Gets or sets the unique name of the backend, shown in telemetry and part of its identity in the state store.
    /// </summary>
    /// <value>
    /// The default value is <see langword="null"/>, meaning <see cref="BaseAddress"/> without its query string.
    /// </value>
    /// <remarks>
    /// The state store keys a backend by <c>{Name}@{address}</c> (just <c>{address}</c> without a name), the address
    /// being scheme, host, port and base path: two clients share throttles and ejections of a backend when they give it
    /// the same name and address, and never otherwise.
    /// </remarks>
    public string? Name { get; set; }

    /// <summary>
    /// Gets or sets headers sent to this backend only, for example an <c>api-key</c>.
    /// </summary>
    /// <remarks>
    /// A header set here replaces a header of the same name on the request, for attempts on this backend only.
    /// Header values are secrets: they are never logged nor reported in telemetry.
    /// </remarks>
    /// <value>An empty, case-insensitive dictionary by default. Never <see langword="null"/>.</value>
    public IDictionary<string, string> Headers
    {
        get => _headers;
        set => _headers = value ?? new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>
    /// Gets or sets the models this backend serves: each logical model name a caller asks for, mapped to this backend's
    /// own deployment (Azure OpenAI) or model name.
    /// </summary>
    /// <remarks>
    /// <para>
    /// Empty (the default): the backend serves every model, under the name the request carries. Not empty: the backend
    /// serves only these names, and each attempt on it carries its own name instead — in the
    /// <c>/openai/deployments/{name}/</c> segment of the path, or else in the top-level <c>"model"</c> of a JSON body
    /// (rewritten without re-serialising anything else). A request goes only to backends that serve its model; when
    /// every backend has a map and none serves the name, the answer is a 404 <c>model_not_found</c> without calling any
    /// backend. Names match exactly (case-sensitive). Two logical names may map to one deployment (aliases); they share
    /// its throttles.
    /// </para>
    /// <para>
    /// Throttles of a mapped request are kept per deployment of the backend (Azure OpenAI throttles per deployment), so
    /// a 429 for one model leaves the backend's other models in rotation. From configuration:
    /// <c>Routing:Backends:{i}:Models:{logical name} = {this backend's name}</c>.
    /// </para>
    /// </remarks>
    /// <value>An empty, case-sensitive dictionary by default. Never <see langword="null"/>.</value>
    public IDictionary<string, string> Models
    {
        get => _models;
        set => _models = value ?? new Dictionary<string, string>(StringComparer.Ordinal);
    }

    /// <summary>
    /// Gets or sets the tokens per minute this backend is known to admit, for a backend that reports no rate-limit
    /// budget (a self-hosted vLLM server, some gateways).
    /// </summary>
    /// <remarks>
    /// Until an answer of the backend reports a budget (<c>x-ratelimit-remaining-tokens</c>), the budget view starts
    /// from this quota and refills it a minute after its first use, then every minute: a request whose estimated cost
    /// (<see cref="PriorityRoutingStrategyOptions.RequestCost"/>) does not fit what is left goes to the next backend
    /// instead of being sent, and when nothing fits the exhausted 429 promises the refill. A budget an answer reports
    /// replaces the declared one from then on. A declared quota is a budget: it needs
    /// <see cref="PriorityRoutingStrategyOptions.TokenBudgets"/> on (the default). With a throttle partition
    /// (<see cref="PriorityRoutingStrategyOptions.ThrottlePartitionKey"/>), or a <see cref="Models"/> map, each partition
    /// or deployment of the backend starts from the whole quota, as budgets are kept per partition. From
    /// configuration: <c>Routing:Backends:{i}:TokensPerMinute</c>. Each process counts its own spends: with several
    /// replicas of a backend that reports nothing, declare each replica's part of the quota.
    /// </remarks>
    /// <value>The default value is <see langword="null"/>: no declared quota. When set, it must be at least <c>1</c>.</value>
    public int? TokensPerMinute { get; set; }

    /// <summary>
    /// Gets or sets the requests per minute this backend is known to admit; see <see cref="TokensPerMinute"/>, which
    /// it works alongside (<c>x-ratelimit-remaining-requests</c> replaces it).
    /// From configuration: <c>Routing:Backends:{i}:RequestsPerMinute</c>.
    /// </summary>
    /// <value>The default value is <see langword="null"/>: no declared quota. When set, it must be at least <c>1</c>.</value>
    public int? RequestsPerMinute { get; set; }

    /// <summary>
    /// Gets or sets how many requests this process may have in flight to this backend at once.
    /// </summary>
    /// <remarks>
    /// <para>
    /// Counted per process, across every client and pipeline whose backend has the same identity (name and address) on
    /// the same state store, reloads included. A request counts from its admission until its response body is read to
    /// the end or disposed (a stream: until it ends); an attempt that fails gives its slot back at once. A request
    /// beyond the cap goes to the next backend (same tier first, then lower). When every backend the request may use is
    /// at its cap (or otherwise unavailable), the caller gets the exhausted <c>429</c> at once with a short
    /// <c>Retry-After</c> (1 s): a slot is expected to free soon, and the caller's retry handles it.
    /// </para>
    /// <para>
    /// A response the caller neither reads to the end nor disposes keeps its slot, as it keeps its connection. From
    /// configuration: <c>Routing:Backends:{i}:MaxConcurrentRequests</c>.
    /// </para>
    /// </remarks>
    /// <value>The default value is <see langword="null"/>: no cap. When set, it must be at least <c>1</c>.</value>
    public int? MaxConcurrentRequests { get; set; }

    /// <summary>
    /// Gets or sets a value indicating whether the backend is drained: it takes no new requests, while requests that
    /// refer to server-side state on it (an affinity pin: a previous response, a file, a batch) still go there.
    /// </summary>
    /// <remarks>
    /// For taking a backend out without deleting it — before maintenance, a quota move, or its removal once its pins
    /// expire. From configuration: <c>Routing:Backends:{i}:Drain = true</c>, applied by a reload without a restart. A
    /// drained backend never comes back by time, so the exhausted answer's <c>Retry-After</c> counts only the backends
    /// that take new requests. At least one backend must not be drained.
    /// </remarks>
    /// <value>The default value is <see langword="false"/>.</value>
    public bool Drain { get; set; }

    /// <summary>
    /// Gets or sets a source of bearer tokens for this backend, called once per attempt on this backend only; its
    /// result is sent as <c>Authorization: Bearer …</c>.
    /// </summary>
    /// <remarks>
    /// This lets Microsoft Entra ID tokens (for example <c>TokenCredential.GetTokenAsync</c>) be used without a
    /// dependency on Azure libraries. Cache tokens in the source: it is called on the hot path. Tokens are never
    /// logged. The default value is <see langword="null"/>: no <c>Authorization</c> header is added.
    /// </remarks>
    public Func<CancellationToken, ValueTask<string>>? BearerTokenProvider { get; set; }

    /// <summary>
    /// Returns the name of the backend, never its headers.
    /// </summary>
    /// <returns>The effective name of the backend.</returns>
    public override string ToString() => GetEffectiveName() ?? "(no address)";

    internal string? GetEffectiveName()
    {
        if (!string.IsNullOrWhiteSpace(Name))
        {
            return Name;
        }

        if (BaseAddress is { IsAbsoluteUri: true } address)
        {
            // The query may carry a secret (e.g. "?code=..."): it never becomes part of the name.
            return address.GetLeftPart(UriPartial.Path);
        }

        return null;
    }

    /// <summary>
    /// Returns the key under which the state store keeps this backend, or one throttle partition of it — for operators
    /// who read or reset a backend's state (for example <see cref="InMemoryBackendStateStore.Reset"/>).
    /// </summary>
    /// <param name="partition">The throttle partition, or <see langword="null"/> for the whole backend.</param>
    /// <returns>The key: <c>{Name}@{address}</c>, the address being scheme, host, port and base path.</returns>
    /// <exception cref="InvalidOperationException"><see cref="BaseAddress"/> is not an absolute URI.</exception>
    public BackendStateKey GetStateKey(string? partition = null)
        => new(GetStateIdentity() ?? throw new InvalidOperationException("The backend has no absolute BaseAddress."), partition);

    /// <summary>
    /// Returns the backend's identity in the state store: <c>{Name}@{location}</c>, or <c>{location}</c> without a name.
    /// </summary>
    internal string? GetStateIdentity()
    {
        if (BaseAddress is not { IsAbsoluteUri: true } address)
        {
            return null;
        }

        var location = GetLocation(address);
        return string.IsNullOrWhiteSpace(Name) ? location : string.Concat(Name, "@", location);
    }

    /// <summary>
    /// Returns scheme, host, port and base path without a trailing slash and without query:
    /// <c>https://apim.example.net/team-a/?x=1</c> → <c>https://apim.example.net/team-a</c>.
    /// </summary>
    internal static string GetLocation(Uri address)
    {
        var path = address.GetComponents(UriComponents.Path | UriComponents.KeepDelimiter, UriFormat.UriEscaped).TrimEnd('/');
        return address.GetComponents(UriComponents.SchemeAndServer, UriFormat.UriEscaped) + path;
    }
}
