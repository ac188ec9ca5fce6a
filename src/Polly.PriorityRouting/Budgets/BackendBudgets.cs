using System.Collections.Concurrent;
using System.Globalization;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;

namespace Polly.PriorityRouting;

/// <summary>
/// The budget view: per backend and partition, the rate-limit budgets the answers reported
/// (<c>x-ratelimit-remaining-*</c>, <c>-limit-*</c>, <c>-reset-*</c>), less what this process has sent since. Admission
/// reads it to skip a backend that cannot take a request of a given cost; the exhausted answer spreads the callers it
/// sends back over the refills. One view per store, like <see cref="BackendHealthTracker"/>, so that every pipeline
/// sharing a store shares it (in this process; it is not written to the store).
/// </summary>
/// <remarks>
/// Bounded: at most <see cref="MaxEntries"/> keys (partitions come from requests); beyond that a key has no budget and
/// routes as without the view.
/// </remarks>
internal sealed class BackendBudgets
{
    public const int MaxEntries = 4096;

    public const string LimitTokensHeader = "x-ratelimit-limit-tokens";

    public const string LimitRequestsHeader = "x-ratelimit-limit-requests";

    private static readonly ConditionalWeakTable<IBackendStateStore, BackendBudgets> ByStore = new();

    private readonly ConcurrentDictionary<BackendStateKey, BackendBudget> _budgets = new();
    private int _count;

    public static BackendBudgets For(IBackendStateStore store) => ByStore.GetValue(store, _ => new BackendBudgets());

    public int Count => Volatile.Read(ref _count);

    /// <summary>Gets a value indicating whether no backend has reported a budget yet: admission has nothing to check.</summary>
    public bool IsEmpty => Volatile.Read(ref _count) == 0;

    /// <summary>Returns whether a request of <paramref name="cost"/> tokens fits the key's budget now. Allocation-free.</summary>
    public bool CanAdmit(BackendStateKey key, long cost, DateTimeOffset now)
    {
        if (Volatile.Read(ref _count) == 0 || !_budgets.TryGetValue(key, out var budget))
        {
            return true;
        }

        lock (budget)
        {
            return budget.TimeUntilAdmitted(cost, now) == TimeSpan.Zero;
        }
    }

    /// <summary>Returns how long until a request of <paramref name="cost"/> tokens fits the key's budget.</summary>
    public TimeSpan TimeUntilAdmitted(BackendStateKey key, long cost, DateTimeOffset now)
    {
        if (Volatile.Read(ref _count) == 0 || !_budgets.TryGetValue(key, out var budget))
        {
            return TimeSpan.Zero;
        }

        lock (budget)
        {
            return budget.TimeUntilAdmitted(cost, now);
        }
    }

    /// <summary>Takes an admitted request's cost off the key's budget until the backend's answer reports it.</summary>
    public void Spend(BackendStateKey key, long cost, DateTimeOffset now)
    {
        if (Volatile.Read(ref _count) == 0 || !_budgets.TryGetValue(key, out var budget))
        {
            return;
        }

        lock (budget)
        {
            if (budget.RemainingTokens != BackendBudget.Unknown && now < budget.TokensResetAt)
            {
                budget.RemainingTokens = Math.Max(0, budget.RemainingTokens - cost);
            }

            if (budget.RemainingRequests != BackendBudget.Unknown && now < budget.RequestsResetAt)
            {
                budget.RemainingRequests = Math.Max(0, budget.RemainingRequests - 1);
            }
        }
    }

    /// <summary>
    /// Promises a caller sent back with an exhausted answer the first moment, no sooner than
    /// <paramref name="earliest"/>, at which the key's refilled budget still has room after the demand already sent
    /// back; <paramref name="earliest"/> itself when nothing is known about the key.
    /// </summary>
    public DateTimeOffset Promise(BackendStateKey key, long cost, DateTimeOffset earliest)
    {
        if (Volatile.Read(ref _count) == 0 || !_budgets.TryGetValue(key, out var budget))
        {
            return earliest;
        }

        lock (budget)
        {
            return budget.Promise(cost, earliest);
        }
    }

    /// <summary>Reads the budgets an answer reports; an answer without them changes nothing and allocates nothing.</summary>
    public void Observe(BackendStateKey key, HttpResponseHeaders headers, DateTimeOffset now, TimeSpan maxCooldown)
    {
        var hasTokens = TryGetNumber(headers, PriorityRoutingConstants.RateLimitRemainingTokensHeader, out var remainingTokens);
        var hasRequests = TryGetNumber(headers, PriorityRoutingConstants.RateLimitRemainingRequestsHeader, out var remainingRequests);
        if (!hasTokens && !hasRequests)
        {
            return;
        }

        if (!_budgets.TryGetValue(key, out var budget))
        {
            if (Volatile.Read(ref _count) >= MaxEntries)
            {
                return;
            }

            budget = _budgets.GetOrAdd(key, static _ => new BackendBudget());
            Interlocked.Exchange(ref _count, _budgets.Count);
        }

        lock (budget)
        {
            if (hasTokens)
            {
                budget.RemainingTokens = remainingTokens;
                budget.TokensResetAt = now + GetDuration(headers, PriorityRoutingConstants.RateLimitResetTokensHeader, budget, maxCooldown);
                if (TryGetNumber(headers, LimitTokensHeader, out var limit))
                {
                    budget.LimitTokens = limit;
                }
            }

            if (hasRequests)
            {
                budget.RemainingRequests = remainingRequests;
                budget.RequestsResetAt = now + GetDuration(headers, PriorityRoutingConstants.RateLimitResetRequestsHeader, budget, maxCooldown);
                if (TryGetNumber(headers, LimitRequestsHeader, out var limit))
                {
                    budget.LimitRequests = limit;
                }
            }
        }
    }

    private static TimeSpan GetDuration(HttpResponseHeaders headers, string name, BackendBudget budget, TimeSpan maxCooldown)
    {
        if (!TryGetFirstValue(headers, name, out var raw) || !ThrottleSignalParser.TryParseDuration(raw, out var seconds))
        {
            // A remaining budget without a reset moment holds for no time: it can neither hold a backend back nor be spent.
            return TimeSpan.Zero;
        }

        var duration = TimeSpan.FromSeconds(Math.Min(seconds, maxCooldown.TotalSeconds));
        if (duration > budget.Window)
        {
            budget.Window = duration;
        }

        return duration;
    }

    private static bool TryGetNumber(HttpResponseHeaders headers, string name, out long value)
    {
        value = 0;
        return TryGetFirstValue(headers, name, out var raw) &&
               long.TryParse(raw.AsSpan().Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out value) &&
               value >= 0;
    }

    private static bool TryGetFirstValue(HttpResponseHeaders headers, string name, out string value)
    {
        if (headers.NonValidated.TryGetValues(name, out var values))
        {
            foreach (var item in values)
            {
                value = item;
                return true;
            }
        }

        value = string.Empty;
        return false;
    }
}
