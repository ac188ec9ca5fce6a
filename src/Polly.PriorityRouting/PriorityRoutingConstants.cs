namespace Polly.PriorityRouting;

internal static class PriorityRoutingConstants
{
    public const string StrategyType = "PriorityRouting";

    public const string OnBackendUnavailableEvent = "OnBackendUnavailable";

    public const string OnBackendsExhaustedEvent = "OnBackendsExhausted";

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

    public static readonly TimeSpan DefaultCooldown = TimeSpan.FromSeconds(10);

    public static readonly TimeSpan DefaultMaxCooldown = TimeSpan.FromMinutes(5);

    public const int DefaultMaxRetryAttempts = 3;

    public const int DefaultConsecutiveFailures = 5;

    public static readonly TimeSpan DefaultBaseEjectionTime = TimeSpan.FromSeconds(30);

    public static readonly TimeSpan DefaultMaxEjectionTime = TimeSpan.FromMinutes(5);

    /// <summary>Separates a backend's name from a throttle partition in store keys: <c>ptu#gpt-4o</c>.</summary>
    public const char PartitionSeparator = '#';

    public static readonly TimeSpan DefaultTotalRequestTimeout = TimeSpan.FromMinutes(2);

    public static readonly TimeSpan DefaultAttemptTimeout = TimeSpan.FromSeconds(30);
}
