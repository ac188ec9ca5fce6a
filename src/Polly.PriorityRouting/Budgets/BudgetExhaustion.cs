namespace Polly.PriorityRouting;

/// <summary>
/// The exhausted answer with a budget view: a backend is free when it is in rotation and its budget admits the
/// request; when the soonest backend waits for its budget's refill, the advertised moment is the one the budget view
/// promises this caller, after the demand already sent back (see <see cref="BackendBudget.Promise"/>), so that callers
/// told to come back do not all come back to one instant; when it waits for its own recovery, that moment.
/// The promise is also the reservation a caller waiting in the strategy holds (see <see cref="WaitQueue"/>): with waiting
/// on, the caller is first promised the soonest refill of any backend that still has room within the bound, so that a
/// full refill of the soonest backend sends waiters to the next backend's refill rather than to its own next window.
/// </summary>
internal static class BudgetExhaustion
{
    /// <summary>
    /// Returns how long until <paramref name="backend"/> is free for the request: in rotation and its budget admitting
    /// the request's cost (a pure read: nothing is promised).
    /// </summary>
    public static TimeSpan TimeUntilFree(
        RoutedBackend backend,
        BackendAvailability availability,
        BackendBudgets budgets,
        DateTimeOffset now,
        RequestRoute route,
        out bool throttled,
        out BackendStateKey key,
        out bool isRefill)
    {
        var partition = route.PartitionOn(backend);
        var cooldown = availability.GetTimeUntilAvailable(backend, now, partition, out throttled);
        var remaining = cooldown;
        key = backend.GetThrottleKey(partition);
        var budgetWait = budgets.TimeUntilAdmitted(key, route.Cost, now, backend.Quota, route.Headroom);

        // The budget binds when the backend is no sooner back for itself than its budget refills.
        isRefill = budgetWait > TimeSpan.Zero && budgetWait >= remaining;
        if (budgetWait > remaining)
        {
            // A spent budget is a throttle the backend would answer with a 429.
            remaining = budgetWait;
            throttled = true;
        }

        if (route.Refusals is { } refusals && refusals.TryGetUntil(key, out var refusedUntil, out var claimed))
        {
            // The shared budget refused this request: it is spent until its refill, which this process's view may not
            // know of; never "free now" (the refused request was not sent). A refill binds: the view may spread the
            // callers it sends back over this process's share of it, as for its own spent budget.
            var refill = refusedUntil - now;
            refill = refill > BackendReservation.MinRetryAfter ? refill : BackendReservation.MinRetryAfter;
            if (claimed)
            {
                // The store set room aside for this request at that refill, for it only: the moment the backend is free
                // for it, whatever this process's view expects of the budget (the store admits, not the view).
                (remaining, isRefill) = refill >= cooldown ? (refill, true) : (cooldown, false);
                throttled |= isRefill;
            }
            else if (refill > remaining)
            {
                (remaining, throttled, isRefill) = (refill, true, true);
            }
        }

        return remaining;
    }

    /// <summary>
    /// Returns whether the shared budget refused the request: its refill is then the word that counts, and a caller may
    /// wait for it without a promise of this process's view — the shared budget decides again at the refill, for every
    /// replica alike. The view's promises do not judge it: the view may know nothing of the budget (a replica that
    /// just started, whose peers spent the window), and where it does, its share of the refill is not what the shared
    /// budget will grant, and each refusal's refill, measured per call, reaches the callers as moments milliseconds apart
    /// that the view would take for separate refills.
    /// </summary>
    private static bool RefusedByStore(BackendStateKey key, RequestRoute route)
        => route.Refusals is { } refusals && refusals.TryGetUntil(key, out _);

    /// <summary>Returns whether the shared budget's refusal holds a claim for the request (see <see cref="BackendReservation.HoldsClaim"/>).</summary>
    private static bool ClaimedByStore(BackendStateKey key, RequestRoute route)
        => route.Refusals is { } refusals && refusals.TryGetUntil(key, out _, out var claimed) && claimed;

    public static (TimeSpan RetryAfter, bool Throttled, BudgetReservation? Reservation) Compute(
        IReadOnlyList<RoutedBackend> backends,
        BackendAvailability availability,
        BackendBudgets budgets,
        DateTimeOffset now,
        RequestRoute route,
        TimeSpan? waitBound = null)
    {
        List<(TimeSpan Remaining, RoutedBackend Backend, BackendStateKey Key)>? candidates = waitBound is null ? null : new(backends.Count);
        var soonest = TimeSpan.MaxValue;
        RoutedBackend? soonestBackend = null;
        BackendStateKey soonestKey = default;
        var soonestIsRefill = false;
        var anyThrottled = false;
        foreach (var backend in backends)
        {
            var remaining = TimeUntilFree(backend, availability, budgets, now, route, out var throttled, out var key, out var isRefill);
            anyThrottled |= throttled;
            if (remaining > TimeSpan.Zero && remaining <= waitBound)
            {
                candidates!.Add((remaining, backend, key));
            }

            if (remaining < soonest)
            {
                soonest = remaining;
                soonestBackend = backend;
                soonestKey = key;
                soonestIsRefill = isRefill;
            }
        }

        if (soonestBackend is null)
        {
            return (TimeSpan.Zero, anyThrottled, null);
        }

        if (candidates is { Count: > 0 })
        {
            // Stable: ties keep the configured (best tier first) order.
            foreach (var (remaining, backend, candidateKey) in candidates.OrderBy(candidate => candidate.Remaining))
            {
                if (budgets.TryPromiseAt(candidateKey, route.Cost, now + remaining, route.Headroom) || RefusedByStore(candidateKey, route))
                {
                    return (remaining, anyThrottled, new BudgetReservation(candidateKey, route.Cost, now + remaining, backend.Name, route.Headroom));
                }
            }
        }

        if (!soonestIsRefill || ClaimedByStore(soonestKey, route))
        {
            // The soonest backend is out for its own cooldown and its budget has room: the caller comes back when the
            // backend frees up, not at a refill promised to callers the budget had no room for. A claim is the store's
            // promise to this caller: its moment, never spread over later refills by this process's view (a caller
            // that comes back after the claim's grace finds its room given away).
            return (soonest, anyThrottled, null);
        }

        var promisedAt = budgets.Promise(soonestKey, route.Cost, now + soonest, out var reserved, route.Headroom);
        var promised = promisedAt - now;
        if (promised > availability.LongestCooldown)
        {
            // Clamped: the moment is no longer the one promised, and holds no room.
            return (availability.LongestCooldown, anyThrottled, null);
        }

        return (promised, anyThrottled, reserved ? new BudgetReservation(soonestKey, route.Cost, promisedAt, soonestBackend.Name, route.Headroom) : null);
    }
}
