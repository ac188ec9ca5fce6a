using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;

namespace Polly.PriorityRouting;

/// <summary>
/// The budget view's keys (backend and partition) and their budgets, bounded: at most <see cref="MaxEntries"/> keys
/// (partitions come from requests, keys from peers). When it is full, a new key first evicts the budgets that say nothing
/// about now or later (<see cref="BackendBudget.IsExpired"/>), at most once per <see cref="EvictionInterval"/>; if none
/// has expired, the new key has no budget and routes as without the view.
/// </summary>
internal sealed class BudgetTable
{
    public const int MaxEntries = 4096;

    /// <summary>How often, at most, a full table looks for expired budgets: a full sweep reads every key.</summary>
    public static readonly TimeSpan EvictionInterval = TimeSpan.FromSeconds(1);

    private readonly ConcurrentDictionary<BackendStateKey, BackendBudget> _budgets = new();
    private readonly object _eviction = new();
    private DateTimeOffset _nextEviction;
    private int _count;

    /// <summary>Gets how many keys have a budget.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>Gets a value indicating whether no backend has reported a budget yet: admission has nothing to check.</summary>
    public bool IsEmpty => Volatile.Read(ref _count) == 0;

    /// <summary>
    /// Finds the budget of <paramref name="key"/>; while the table is empty (every request before the first budget is
    /// reported, and every request of an app whose backends report none) without a lookup.
    /// </summary>
    public bool TryGet(BackendStateKey key, [NotNullWhen(true)] out BackendBudget? budget)
    {
        if (Volatile.Read(ref _count) == 0)
        {
            budget = null;
            return false;
        }

        return _budgets.TryGetValue(key, out budget);
    }

    /// <summary>Returns the budget of <paramref name="key"/>, added if the table has room (after evicting the expired, if full); else <see langword="null"/>.</summary>
    public BackendBudget? GetOrAdd(BackendStateKey key, DateTimeOffset now)
    {
        if (_budgets.TryGetValue(key, out var budget))
        {
            return budget;
        }

        if (Volatile.Read(ref _count) >= MaxEntries && !TryEvictExpired(now))
        {
            return null;
        }

        budget = _budgets.GetOrAdd(key, static _ => new BackendBudget());
        Interlocked.Exchange(ref _count, _budgets.Count);
        return budget;
    }

    /// <summary>Drops the budgets that say nothing about now or later, at most once per <see cref="EvictionInterval"/>.</summary>
    /// <returns>Whether the table has room for a new key.</returns>
    private bool TryEvictExpired(DateTimeOffset now)
    {
        lock (_eviction)
        {
            if (now >= _nextEviction)
            {
                _nextEviction = now + EvictionInterval;
                foreach (var (key, budget) in _budgets)
                {
                    lock (budget)
                    {
                        // Marked under its lock: a waiter's hold can no longer be added to a budget the view dropped.
                        if (budget.IsExpired(now) && _budgets.TryRemove(new KeyValuePair<BackendStateKey, BackendBudget>(key, budget)))
                        {
                            budget.Evicted = true;
                        }
                    }
                }

                Interlocked.Exchange(ref _count, _budgets.Count);
            }

            return Volatile.Read(ref _count) < MaxEntries;
        }
    }
}
