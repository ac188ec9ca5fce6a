namespace Polly.PriorityRouting.Redis;

/// <summary>
/// The affinity pins this replica created while Redis could not be written, published by the next synchronization so
/// that the other replicas find them. Bounded: expired pins are dropped, and at most <see cref="Capacity"/> are kept.
/// </summary>
/// <remarks>
/// <para>
/// When the set is full of live pins, a new pin is not kept (the policy of <see cref="WaitingForRedis{TKey, TValue}"/>): its id still
/// routes to its backend from this replica, and the other replicas route it normally, as an id they have never seen.
/// The default capacity covers 100 creations a second for well over a minute of outage.
/// </para>
/// <para>
/// A deleted id is <see cref="Forget">forgotten</see>, so the synchronization never writes it back; one deleted while it
/// is being written is removed again (<see cref="PublishAsync"/>).
/// </para>
/// <para>
/// Soft-affinity keys are never kept: they are pinned again by every successful request, which publishes them once
/// Redis is back.
/// </para>
/// </remarks>
internal sealed class UnpublishedPins
{
    /// <summary>The default <see cref="Capacity"/>.</summary>
    public const int DefaultCapacity = WaitingForRedis<string, UnpublishedPin>.DefaultCapacity;

    private readonly WaitingForRedis<string, UnpublishedPin> _pins;

    public UnpublishedPins(int capacity = DefaultCapacity) => _pins = new(static pin => pin.ExpiresAt, capacity, StringComparer.Ordinal);

    public int Capacity => _pins.Capacity;

    public int Count => _pins.Count;

    /// <summary>Gets the pins kept right now, in no order; the set may change while the caller walks them.</summary>
    public IEnumerable<KeyValuePair<string, UnpublishedPin>> Pending => _pins.Entries;

    /// <summary>
    /// Keeps a pin for the next synchronization (a kept id takes the later expiry); drops it if it already expired.
    /// </summary>
    public void Keep(string id, string backend, DateTimeOffset expiresAt, DateTimeOffset now) => _pins.Keep(id, new UnpublishedPin(backend, expiresAt), now);

    /// <summary>Forgets an id that was deleted: it must never be published.</summary>
    public void Forget(string id) => _pins.Forget(id);

    /// <summary>
    /// Writes every kept pin with the lifetime it has left and takes it out of the set once written. A pin forgotten
    /// while it was written (its id was deleted meanwhile) is removed again with <paramref name="remove"/>, so that a
    /// <c>DELETE</c> and a publication never leave the pin behind, in whatever order they reach Redis. A failure is
    /// thrown and leaves the pins not yet written for the next attempt.
    /// </summary>
    /// <param name="write">Writes one pin (id, backend, time to live).</param>
    /// <param name="remove">Removes one id's pin.</param>
    /// <param name="clock">The replica's clock, read for each pin.</param>
    /// <returns>The number of pins written and taken out.</returns>
    public async Task<int> PublishAsync(Func<string, string, TimeSpan, Task> write, Func<string, Task> remove, Func<DateTimeOffset> clock)
    {
        var published = 0;
        foreach (var pin in _pins.Entries)
        {
            var (id, (backend, expiresAt)) = pin;
            var remaining = expiresAt - clock();
            if (remaining <= TimeSpan.Zero)
            {
                _pins.TryTake(pin);
                continue;
            }

            await write(id, backend, remaining).ConfigureAwait(false);
            if (_pins.TryTake(pin))
            {
                published++;
            }
            else if (!_pins.Contains(id))
            {
                await remove(id).ConfigureAwait(false);
            }

            // Otherwise it was kept again meanwhile, which only a failed write does: the next attempt writes it.
        }

        return published;
    }
}
