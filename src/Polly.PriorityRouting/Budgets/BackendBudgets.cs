using System.Collections.Concurrent;
using System.Globalization;
using System.Net.Http.Headers;

namespace Polly.PriorityRouting;

/// <summary>
/// The budget view: per backend and partition, the rate-limit budgets the answers reported
/// (<c>x-ratelimit-remaining-*</c>, <c>-limit-*</c>, <c>-reset-*</c>), less what this process has sent since. Admission
/// reads it to skip a backend that cannot take a request of a given cost; the exhausted answer spreads the callers it
/// sends back over the refills. One view per store (see <see cref="SharedBackendState"/>), so that every pipeline
/// sharing a store shares it; a store that implements <see cref="IBackendBudgetStore"/> also carries the counts its
/// answers report to the views of other processes, and theirs to this one (see <see cref="BudgetCounter"/> for how
/// reports merge). Spends stay in the process that made them.
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

    private readonly ConcurrentDictionary<BackendStateKey, BackendBudget> _budgets = new();
    private readonly IBackendBudgetStore? _store;
    private int _count;
    private int _subscribed;

    /// <summary>Initializes a view of this process only.</summary>
    public BackendBudgets()
    {
    }

    /// <summary>Initializes a view that shares its answers' budgets through <paramref name="store"/>; see <see cref="SubscribeOnce"/>.</summary>
    /// <param name="store">The store that carries observations between processes.</param>
    public BackendBudgets(IBackendBudgetStore store) => _store = store;

    /// <summary>Subscribes to the store's observations of other processes, merged at <paramref name="timeProvider"/>'s now; once.</summary>
    public void SubscribeOnce(TimeProvider timeProvider)
    {
        if (_store is not null && Interlocked.Exchange(ref _subscribed, 1) == 0)
        {
            _store.SubscribeToBudgets((key, observation) => Merge(key, observation, timeProvider.GetUtcNow()));
        }
    }

    public int Count => Volatile.Read(ref _count);

    /// <summary>
    /// Gets this process's share of a refilled limit: 1, or 1/n when n processes share budgets through the store.
    /// </summary>
    private double Share => _store is { PeerCount: > 0 and var peers } ? 1.0 / (1 + peers) : 1.0;

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
            return budget.TimeUntilAdmitted(cost, now, Share) == TimeSpan.Zero;
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
            return budget.TimeUntilAdmitted(cost, now, Share);
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
            var share = Share;
            budget.Tokens.Spend(cost, now, share);
            budget.Requests.Spend(1, now, share);
        }
    }

    /// <summary>
    /// Promises a caller sent back with an exhausted answer the first moment, no sooner than
    /// <paramref name="earliest"/>, at which the key's refilled budget still has room after the demand already sent
    /// back; <paramref name="earliest"/> itself when nothing is known about the key.
    /// </summary>
    public DateTimeOffset Promise(BackendStateKey key, long cost, DateTimeOffset earliest)
        => Promise(key, cost, earliest, out _);

    /// <inheritdoc cref="Promise(BackendStateKey, long, DateTimeOffset)"/>
    /// <param name="key">The backend (or partition) the caller is sent back to.</param>
    /// <param name="cost">The request's estimated tokens.</param>
    /// <param name="earliest">The soonest moment any backend of the request frees up.</param>
    /// <param name="reserved">Whether the moment holds room for this request in the key's refill.</param>
    public DateTimeOffset Promise(BackendStateKey key, long cost, DateTimeOffset earliest, out bool reserved)
    {
        reserved = false;
        if (Volatile.Read(ref _count) == 0 || !_budgets.TryGetValue(key, out var budget))
        {
            return earliest;
        }

        lock (budget)
        {
            return budget.Promise(cost, earliest, Share, out reserved);
        }
    }

    /// <summary>Promises room in the key's refill at <paramref name="at"/> only; see <see cref="BackendBudget.TryPromiseAt"/>.</summary>
    public bool TryPromiseAt(BackendStateKey key, long cost, DateTimeOffset at)
    {
        if (Volatile.Read(ref _count) == 0 || !_budgets.TryGetValue(key, out var budget))
        {
            return false;
        }

        lock (budget)
        {
            return budget.TryPromiseAt(cost, at, Share);
        }
    }

    /// <summary>
    /// A caller waiting in the strategy for its promised refill is released: until it spends (or gives up), the tokens
    /// it was promised are held from everyone else's admission. See <see cref="BackendBudget.HeldTokens"/>.
    /// </summary>
    public void Hold(BackendStateKey key, long cost) => AddHeld(key, cost, 1);

    /// <summary>A waiter cancelled before its refill came: its room goes to whoever asks next.</summary>
    public void Withdraw(BudgetReservation reservation)
    {
        if (!_budgets.TryGetValue(reservation.Key, out var budget))
        {
            return;
        }

        lock (budget)
        {
            budget.Withdraw(reservation.Cost, reservation.DueAt);
        }
    }

    /// <summary>The released caller is about to be admitted, or gave up: what it held is free again.</summary>
    public void Unhold(BackendStateKey key, long cost) => AddHeld(key, -cost, -1);

    /// <summary>
    /// Reads the budgets an answer reports and, when the store shares budgets, hands the merged counts to it; an answer
    /// without them changes nothing and allocates nothing.
    /// </summary>
    public void Observe(BackendStateKey key, HttpResponseHeaders headers, DateTimeOffset now, TimeSpan maxCooldown)
    {
        var hasTokens = TryGetNumber(headers, PriorityRoutingConstants.RateLimitRemainingTokensHeader, out var remainingTokens);
        var hasRequests = TryGetNumber(headers, PriorityRoutingConstants.RateLimitRemainingRequestsHeader, out var remainingRequests);
        if ((!hasTokens && !hasRequests) || GetOrAdd(key) is not { } budget)
        {
            return;
        }

        BackendBudgetObservation shared;
        lock (budget)
        {
            if (hasTokens)
            {
                var resetAt = now + GetDuration(headers, PriorityRoutingConstants.RateLimitResetTokensHeader, maxCooldown);
                budget.Tokens.Merge(remainingTokens, GetNumberOrUnknown(headers, LimitTokensHeader), resetAt, now, ownAnswer: true);
            }

            if (hasRequests)
            {
                var resetAt = now + GetDuration(headers, PriorityRoutingConstants.RateLimitResetRequestsHeader, maxCooldown);
                budget.Requests.Merge(remainingRequests, GetNumberOrUnknown(headers, LimitRequestsHeader), resetAt, now, ownAnswer: true);
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
        if ((!hasTokens && !hasRequests) || GetOrAdd(key) is not { } budget)
        {
            return;
        }

        lock (budget)
        {
            if (hasTokens)
            {
                budget.Tokens.Merge(observation.RemainingTokens!.Value, OrUnknown(observation.LimitTokens), observation.TokensResetAt, now, ownAnswer: false);
            }

            if (hasRequests)
            {
                budget.Requests.Merge(observation.RemainingRequests!.Value, OrUnknown(observation.LimitRequests), observation.RequestsResetAt, now, ownAnswer: false);
            }
        }
    }

    private void AddHeld(BackendStateKey key, long tokens, long requests)
    {
        if (!_budgets.TryGetValue(key, out var budget))
        {
            return;
        }

        lock (budget)
        {
            budget.HeldTokens = Math.Max(0, budget.HeldTokens + tokens);
            budget.HeldRequests = Math.Max(0, budget.HeldRequests + requests);
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

    private BackendBudget? GetOrAdd(BackendStateKey key)
    {
        if (_budgets.TryGetValue(key, out var budget))
        {
            return budget;
        }

        if (Volatile.Read(ref _count) >= MaxEntries)
        {
            return null;
        }

        budget = _budgets.GetOrAdd(key, static _ => new BackendBudget());
        Interlocked.Exchange(ref _count, _budgets.Count);
        return budget;
    }

    private static TimeSpan GetDuration(HttpResponseHeaders headers, string name, TimeSpan maxCooldown)
    {
        if (!ThrottleSignalParser.TryGetDuration(headers, name, out var seconds))
        {
            // A remaining budget without a reset moment holds for no time: it can neither hold a backend back nor be spent.
            return TimeSpan.Zero;
        }

        return TimeSpan.FromSeconds(Math.Min(seconds, maxCooldown.TotalSeconds));
    }

    private static long GetNumberOrUnknown(HttpResponseHeaders headers, string name)
        => TryGetNumber(headers, name, out var value) ? value : BackendBudget.Unknown;

    private static bool TryGetNumber(HttpResponseHeaders headers, string name, out long value)
    {
        value = 0;
        return ThrottleSignalParser.TryGetFirstValue(headers, name, out var raw) &&
               long.TryParse(raw.AsSpan().Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out value) &&
               value >= 0;
    }
}
