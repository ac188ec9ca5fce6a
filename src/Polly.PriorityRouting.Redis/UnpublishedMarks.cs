namespace Polly.PriorityRouting.Redis;

/// <summary>
/// What this replica itself marked while Redis could not be written, published by the next synchronization. Bounded:
/// expired marks are dropped, and at most <see cref="Capacity"/> are kept (the policy of <see cref="WaitingForRedis{TKey, TValue}"/>).
/// </summary>
/// <remarks>
/// Kept apart from the mirror so that only first-hand deadlines are published, never ones learned from others. When the
/// set is full of marks still in force, a new key is not kept (its backend is still skipped locally; other replicas pay
/// their own 429 for it); a kept key is always extended.
/// </remarks>
internal sealed class UnpublishedMarks
{
    /// <summary>The default <see cref="Capacity"/>.</summary>
    public const int DefaultCapacity = WaitingForRedis<BackendStateKey, BackendUnavailability>.DefaultCapacity;

    private readonly WaitingForRedis<BackendStateKey, BackendUnavailability> _marks;

    public UnpublishedMarks(int capacity = DefaultCapacity) => _marks = new(static mark => mark.Until, capacity);

    public int Capacity => _marks.Capacity;

    public int Count => _marks.Count;

    /// <summary>
    /// Keeps a mark for the next synchronization, or extends the kept one; drops it if it already expired.
    /// </summary>
    public void Keep(BackendStateKey key, BackendUnavailability unavailability, DateTimeOffset now) => _marks.Keep(key, unavailability, now);

    /// <summary>
    /// Takes every kept mark out of the set and returns those still in force at <paramref name="now"/>. A mark extended
    /// meanwhile stays for the next round.
    /// </summary>
    public List<KeyValuePair<BackendStateKey, BackendUnavailability>> TakeActive(DateTimeOffset now)
    {
        var taken = new List<KeyValuePair<BackendStateKey, BackendUnavailability>>();
        foreach (var mark in _marks.Entries)
        {
            if (_marks.TryTake(mark) && mark.Value.IsActiveAt(now))
            {
                taken.Add(mark);
            }
        }

        return taken;
    }
}
