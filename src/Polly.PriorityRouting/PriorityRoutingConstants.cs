namespace Polly.PriorityRouting;

internal static class PriorityRoutingConstants
{
    public const string StrategyType = "PriorityRouting";

    public const string OnBackendUnavailableEvent = "OnBackendUnavailable";

    public const string OnBackendsExhaustedEvent = "OnBackendsExhausted";

    /// <summary>Polly's own name for the event that reports each attempt (as its retry and hedging do).</summary>
    public const string ExecutionAttemptEvent = "ExecutionAttempt";

    public const int DefaultPriority = 1;

    public const int MinPriority = 1;

    public const int DefaultWeight = 1;

    public const int MinWeight = 1;

    public const int MaxWeight = 1000;

    public const int MinAttempts = 1;

    public const string RetryAfterMillisecondsHeader = "retry-after-ms";

    public const string MsRetryAfterMillisecondsHeader = "x-ms-retry-after-ms";

    public const string RateLimitResetRequestsHeader = "x-ratelimit-reset-requests";

    public const string RateLimitResetTokensHeader = "x-ratelimit-reset-tokens";

    public const string RateLimitRemainingRequestsHeader = "x-ratelimit-remaining-requests";

    public const string RateLimitRemainingTokensHeader = "x-ratelimit-remaining-tokens";

    /// <summary>Marks the synthetic answer so that callers and outer strategies can tell it from a backend's own.</summary>
    public const string ExhaustedHeader = "x-priority-routing-exhausted";

    /// <summary>The header naming the logical model that served an answer (the requested model, or a fallback).</summary>
    public const string ModelHeader = "x-priority-routing-model";

    public static readonly TimeSpan DefaultCooldown = TimeSpan.FromSeconds(10);

    public static readonly TimeSpan DefaultMaxCooldown = TimeSpan.FromMinutes(5);

    /// <summary>The default share of each budget kept for foreground requests (see <see cref="PriorityRoutingStrategyOptions.BackgroundHeadroom"/>).</summary>
    public const double DefaultBackgroundHeadroom = 0.2;

    public const int DefaultMaxRetryAttempts = 3;

    public const int DefaultConsecutiveFailures = 5;

    public static readonly TimeSpan DefaultBaseEjectionTime = TimeSpan.FromSeconds(30);

    public static readonly TimeSpan DefaultMaxEjectionTime = TimeSpan.FromMinutes(5);

    /// <summary>
    /// What the exhausted answer advertises for a backend whose ejection ended while its single probe is in flight: the
    /// probe's answer decides, typically within one round trip, so a short wait — never "retry after 0", which makes
    /// an outer retry spin.
    /// </summary>
    public static readonly TimeSpan ProbeRetryDelay = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Room for a backend that hangs for a whole <see cref="DefaultAttemptTimeout"/>, a full-length generation on the
    /// next one, and a wait for a throttle to end.
    /// </summary>
    public static readonly TimeSpan DefaultTotalRequestTimeout = TimeSpan.FromMinutes(5);

    /// <summary>
    /// What the OpenAI and Azure OpenAI SDKs allow one try (System.ClientModel's default <c>NetworkTimeout</c>, like
    /// <see cref="HttpClient.Timeout"/>'s): a non-streaming completion returns its headers only when it is generated,
    /// so a shorter attempt timeout cuts answers the SDK would have waited for and has the next backend generate them
    /// again.
    /// </summary>
    public static readonly TimeSpan DefaultAttemptTimeout = TimeSpan.FromSeconds(100);

    /// <summary><see cref="HttpClient.Timeout"/>'s default, which the handler lifts: its own total timeout bounds the call.</summary>
    public static readonly TimeSpan HttpClientDefaultTimeout = TimeSpan.FromSeconds(100);
}
