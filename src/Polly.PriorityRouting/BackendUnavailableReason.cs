namespace Polly.PriorityRouting;

/// <summary>
/// Why a backend was taken out of rotation.
/// </summary>
/// <remarks>
/// The numeric values travel between replicas through distributed stores: they are never renumbered, only added.
/// </remarks>
public enum BackendUnavailableReason
{
    /// <summary>
    /// The outcome was handled for a reason not covered by the other values (for example a custom
    /// <see cref="PriorityRoutingStrategyOptions.ShouldHandle"/> predicate).
    /// </summary>
    Other = 0,

    /// <summary>
    /// The backend throttled the request: it answered <c>429</c>, or its answer carried a throttle signal such as
    /// <c>Retry-After</c>.
    /// </summary>
    Throttled = 1,

    /// <summary>
    /// The backend answered with a server error (<c>5xx</c>) and no throttle signal.
    /// </summary>
    ServerError = 2,

    /// <summary>
    /// The request failed in transport: refused or reset connection, DNS failure, TLS failure.
    /// </summary>
    TransportError = 3,

    /// <summary>
    /// The attempt timed out (an inner timeout strategy, or <c>408 Request Timeout</c>).
    /// </summary>
    Timeout = 4,

    /// <summary>
    /// The backend failed several times in a row (server errors, transport errors, timeouts) and was ejected by outlier
    /// detection; it returns through a single probe request.
    /// </summary>
    Ejected = 5,
}
