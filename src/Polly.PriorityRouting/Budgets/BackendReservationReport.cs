namespace Polly.PriorityRouting;

/// <summary>
/// What the answer to a reserved attempt reported about its backend's budgets, for
/// <see cref="IBackendReservationStore.Correct"/>: the counts as of when the backend admitted the request, and the
/// resets measured from when it was sent.
/// </summary>
/// <param name="RemainingTokens">The answer's <c>x-ratelimit-remaining-tokens</c>, or <see langword="null"/>.</param>
/// <param name="LimitTokens">The answer's <c>x-ratelimit-limit-tokens</c>, or <see langword="null"/>.</param>
/// <param name="TokensResetAfter">The answer's <c>x-ratelimit-reset-tokens</c> (clamped to the strategy's <c>MaxCooldown</c>; zero when absent).</param>
/// <param name="RemainingRequests">The answer's <c>x-ratelimit-remaining-requests</c>, or <see langword="null"/>.</param>
/// <param name="LimitRequests">The answer's <c>x-ratelimit-limit-requests</c>, or <see langword="null"/>.</param>
/// <param name="RequestsResetAfter">The answer's <c>x-ratelimit-reset-requests</c> (clamped; zero when absent).</param>
/// <param name="SentAt">When the attempt was sent, on the reserving process's clock: the resets count from here.</param>
/// <param name="ReceivedAt">When the answer's headers arrived, on the same clock.</param>
/// <remarks>
/// Azure OpenAI counts a request's tokens when it admits it: a completion that took seconds reports the budget of
/// seconds ago. A store corrects its count to what the backend had spent then (<c>limit − remaining</c>) plus what was
/// reserved since the reservation was made, so that a late answer loses nothing reserved meanwhile.
/// </remarks>
public readonly record struct BackendReservationReport(
    long? RemainingTokens,
    long? LimitTokens,
    TimeSpan TokensResetAfter,
    long? RemainingRequests,
    long? LimitRequests,
    TimeSpan RequestsResetAfter,
    DateTimeOffset SentAt,
    DateTimeOffset ReceivedAt);
