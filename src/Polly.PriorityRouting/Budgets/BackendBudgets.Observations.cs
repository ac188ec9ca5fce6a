using System.Net.Http.Headers;

namespace Polly.PriorityRouting;

/// <content>
/// What answers report: this process's own (read once from their rate-limit headers) and other processes' (through the
/// store), merged into the budgets; and what this process's answers hand the store for the others.
/// </content>
internal sealed partial class BackendBudgets
{
    /// <summary>
    /// Reads the budgets an answer reports and, when the store shares budgets, hands the merged counts to it; an answer
    /// without them changes nothing and allocates nothing.
    /// </summary>
    /// <param name="key">The backend (or partition) that answered.</param>
    /// <param name="headers">The answer's headers.</param>
    /// <param name="now">The current time: when the answer arrived.</param>
    /// <param name="maxCooldown">The longest reset believed.</param>
    /// <param name="sentAt">
    /// When the attempt was sent (<paramref name="now"/> when <see langword="null"/>). A backend decides, and reports, its
    /// budget when it admits the request: a completion answered seconds later tells the reset of then, so it is counted
    /// from the send.
    /// </param>
    /// <param name="ticket">
    /// The attempt's admission ticket (<see cref="TryTake(BackendStateKey, long, DateTimeOffset, out long, BudgetHold?, DeclaredQuota?, double)"/>):
    /// the answer's count includes this process's spends up to it, not those admitted while it was in flight;
    /// <see langword="null"/>: all of them.
    /// </param>
    public void Observe(BackendStateKey key, HttpResponseHeaders headers, DateTimeOffset now, TimeSpan maxCooldown, DateTimeOffset? sentAt = null, long? ticket = null)
    {
        if (RateLimitHeaders.TryRead(headers, maxCooldown, sentAt ?? now, now, out var report))
        {
            Observe(key, report, ticket);
        }
    }

    /// <summary>Merges what an answer of this process reported, read once by <see cref="RateLimitHeaders.TryRead"/>.</summary>
    /// <param name="key">The backend, and optionally the partition.</param>
    /// <param name="report">The answer's budgets; it arrived at <see cref="BackendReservationReport.ReceivedAt"/>.</param>
    /// <param name="ticket">The attempt's admission ticket; see the other overload.</param>
    public void Observe(BackendStateKey key, in BackendReservationReport report, long? ticket)
    {
        var now = report.ReceivedAt;
        if (_budgets.GetOrAdd(key, now) is not { } budget)
        {
            return;
        }

        BackendBudgetObservation shared;
        lock (budget)
        {
            var admittedAt = report.SentAt < now ? report.SentAt : now;
            if (report.RemainingTokens is { } remainingTokens)
            {
                budget.Tokens.Merge(remainingTokens, OrUnknown(report.LimitTokens), admittedAt + report.TokensResetAfter, admittedAt, now, includedSpends: ticket ?? long.MaxValue);
            }

            if (report.RemainingRequests is { } remainingRequests)
            {
                budget.Requests.Merge(remainingRequests, OrUnknown(report.LimitRequests), admittedAt + report.RequestsResetAfter, admittedAt, now, includedSpends: ticket ?? long.MaxValue);
            }

            shared = _store is null ? default : ToObservation(budget);
        }

        // Outside the lock: the store may take its own.
        _store?.PublishBudget(key, shared, now);
    }

    /// <summary>
    /// Merges what another process's answers reported (through the store): like an answer of this process, except that
    /// its counts do not include this process's spends.
    /// </summary>
    public void Merge(BackendStateKey key, BackendBudgetObservation observation, DateTimeOffset now)
    {
        // A report of a window already over says nothing about the budget now.
        var hasTokens = observation.RemainingTokens is >= 0 && observation.TokensResetAt > now;
        var hasRequests = observation.RemainingRequests is >= 0 && observation.RequestsResetAt > now;
        if ((!hasTokens && !hasRequests) || _budgets.GetOrAdd(key, now) is not { } budget)
        {
            return;
        }

        lock (budget)
        {
            if (hasTokens)
            {
                budget.Tokens.Merge(observation.RemainingTokens!.Value, OrUnknown(observation.LimitTokens), observation.TokensResetAt, now, now, includedSpends: null);
            }

            if (hasRequests)
            {
                budget.Requests.Merge(observation.RemainingRequests!.Value, OrUnknown(observation.LimitRequests), observation.RequestsResetAt, now, now, includedSpends: null);
            }
        }
    }

    private static BackendBudgetObservation ToObservation(BackendBudget budget) => new(
        OrNull(budget.Tokens.Reported),
        OrNull(budget.Tokens.Limit),
        budget.Tokens.ResetAt,
        OrNull(budget.Requests.Reported),
        OrNull(budget.Requests.Limit),
        budget.Requests.ResetAt);

    private static long? OrNull(long value) => value == BackendBudget.Unknown ? null : value;

    private static long OrUnknown(long? value) => value is >= 0 ? value.Value : BackendBudget.Unknown;
}
