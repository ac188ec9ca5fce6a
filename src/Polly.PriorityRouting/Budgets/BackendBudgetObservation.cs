namespace Polly.PriorityRouting;

/// <summary>
/// What the answers of one backend (or one throttle partition of it) reported about its rate-limit budgets, as one
/// process shares it with the others through an <see cref="IBackendBudgetStore"/>.
/// </summary>
/// <param name="RemainingTokens">The lowest <c>x-ratelimit-remaining-tokens</c> reported for the current window, or <see langword="null"/> when unknown.</param>
/// <param name="LimitTokens">The <c>x-ratelimit-limit-tokens</c> last reported, or <see langword="null"/>.</param>
/// <param name="TokensResetAt">When the token budget refills (its <c>x-ratelimit-reset-tokens</c>, on the observer's clock).</param>
/// <param name="RemainingRequests">The lowest <c>x-ratelimit-remaining-requests</c> reported for the current window, or <see langword="null"/>.</param>
/// <param name="LimitRequests">The <c>x-ratelimit-limit-requests</c> last reported, or <see langword="null"/>.</param>
/// <param name="RequestsResetAt">When the request budget refills.</param>
/// <remarks>
/// Counts only: what a process spent is not part of it. The budget view merges an observation from elsewhere like one
/// of its own answers (the lowest count of a window wins; a later window replaces an earlier one), so a store may
/// deliver an observation late, twice or never without raising a budget above what a backend reported.
/// </remarks>
public readonly record struct BackendBudgetObservation(
    long? RemainingTokens,
    long? LimitTokens,
    DateTimeOffset TokensResetAt,
    long? RemainingRequests,
    long? LimitRequests,
    DateTimeOffset RequestsResetAt);
