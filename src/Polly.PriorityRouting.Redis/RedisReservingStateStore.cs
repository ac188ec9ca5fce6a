namespace Polly.PriorityRouting.Redis;

/// <summary>
/// The Redis store with <see cref="PriorityRoutingRedisStoreOptions.Reservations"/> on: the same store, and an
/// <see cref="IBackendReservationStore"/> that reserves each attempt's cost in budgets every replica shares
/// (<see cref="RedisReservations"/>). A type of its own so that a store with reservations off is no reservation store
/// at all: the strategy's admission then stays what it was, synchronous and without a Redis call.
/// </summary>
internal sealed class RedisReservingStateStore : IBackendStateStore, IBackendBudgetStore, IBackendReservationStore, IAsyncDisposable, IDisposable
{
    private readonly RedisReservations _reservations;

    public RedisReservingStateStore(RedisBackendStateStore inner)
    {
        Inner = inner;
        _reservations = inner.Reservations ?? throw new ArgumentException("The store was made without reservations.", nameof(inner));
    }

    /// <summary>Gets the store itself.</summary>
    public RedisBackendStateStore Inner { get; }

    /// <inheritdoc/>
    public int PeerCount => Inner.PeerCount;

    /// <summary>Returns the Redis store behind a registered store, with or without reservations; <see langword="null"/> for another store.</summary>
    public static RedisBackendStateStore? Find(object? store) => store switch
    {
        RedisBackendStateStore redis => redis,
        RedisReservingStateStore reserving => reserving.Inner,
        _ => null,
    };

    /// <inheritdoc/>
    public bool TryGetUnavailability(BackendStateKey key, out BackendUnavailability unavailability) => Inner.TryGetUnavailability(key, out unavailability);

    /// <inheritdoc/>
    public ValueTask MarkUnavailableAsync(BackendStateKey key, BackendUnavailability unavailability, DateTimeOffset now, CancellationToken cancellationToken)
        => Inner.MarkUnavailableAsync(key, unavailability, now, cancellationToken);

    /// <inheritdoc/>
    public IReadOnlyList<KeyValuePair<BackendStateKey, BackendUnavailability>> GetEntries(string backend) => Inner.GetEntries(backend);

    /// <inheritdoc/>
    public void PublishBudget(BackendStateKey key, BackendBudgetObservation observation, DateTimeOffset now) => Inner.PublishBudget(key, observation, now);

    /// <inheritdoc/>
    public void SubscribeToBudgets(Action<BackendStateKey, BackendBudgetObservation> onObservation) => Inner.SubscribeToBudgets(onObservation);

    /// <inheritdoc/>
    public ValueTask<BackendReservation> ReserveAsync(BackendStateKey key, long cost, double headroom, double promised, DateTimeOffset now, CancellationToken cancellationToken)
        => _reservations.ReserveAsync(key, cost, headroom, promised, now, cancellationToken);

    /// <inheritdoc/>
    public ValueTask<BackendReservation> ReserveAsync(BackendStateKey key, long cost, double headroom, double promised, long claimant, DateTimeOffset now, CancellationToken cancellationToken)
        => _reservations.ReserveAsync(key, cost, headroom, promised, claimant, now, cancellationToken);

    /// <inheritdoc/>
    public void ReleaseClaim(BackendStateKey key, long claimant) => _reservations.ReleaseClaim(key, claimant);

    /// <inheritdoc/>
    public void Correct(BackendReservation reservation, BackendReservationReport report) => _reservations.Correct(reservation, report);

    /// <inheritdoc/>
    public void Release(BackendReservation reservation) => _reservations.Release(reservation);

    /// <inheritdoc/>
    public void Dispose() => Inner.Dispose();

    /// <inheritdoc/>
    public ValueTask DisposeAsync() => Inner.DisposeAsync();
}
