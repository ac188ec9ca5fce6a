using Polly.PriorityRouting;

namespace PriorityRouting.Simulation.Routers;

/// <summary>
/// One replica's store in "ours (reserved)": a <see cref="ReplicaStateStore"/> that is also the library's
/// <see cref="IBackendReservationStore"/> over the <see cref="SharedReservationCounter"/> every replica shares, one
/// round trip away — what the Redis store's reservations are to one process. It forwards the request's claimant (the
/// overload the strategy calls), so a caller sent back redeems its claim through whichever replica it comes back to. A reservation waits the round trip on the
/// request's path (half before the counter decides, half after); corrections and releases reach the counter half a
/// round trip later, off the caller's path.
/// </summary>
internal sealed class ReservingReplicaStateStore(
    InMemoryBackendStateStore shared,
    SimulatedBudgetChannel? budgets,
    SharedReservationCounter counter,
    VirtualDelays delays,
    TimeProvider time,
    TimeSpan roundTrip) : ReplicaStateStore(shared, budgets), IBackendReservationStore
{
    private TimeSpan HalfTrip => roundTrip / 2;

    public ValueTask<BackendReservation> ReserveAsync(BackendStateKey key, long cost, double headroom, double promised, DateTimeOffset now, CancellationToken cancellationToken)
        => ReserveAsync(key, cost, headroom, promised, claimant: 0, now, cancellationToken);

    /// <summary>The strategy's call: the claimant travels to the shared counter, which keeps claims as the Redis script does.</summary>
    public async ValueTask<BackendReservation> ReserveAsync(BackendStateKey key, long cost, double headroom, double promised, long claimant, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await delays.Delay(HalfTrip, cancellationToken).ConfigureAwait(false);
        var reservation = counter.Reserve(key, cost, headroom, promised, claimant, time.GetUtcNow());
        await delays.Delay(roundTrip - HalfTrip, cancellationToken).ConfigureAwait(false);
        return reservation;
    }

    /// <summary>Gives a claim back, half a round trip later, off the caller's path (the Redis store's <c>Unclaim</c>).</summary>
    public void ReleaseClaim(BackendStateKey key, long claimant)
        => _ = LaterAsync(() => counter.Unclaim(key, claimant, time.GetUtcNow()));

    public void Correct(BackendReservation reservation, BackendReservationReport report)
        => _ = LaterAsync(() => counter.Correct(reservation, report, time.GetUtcNow()));

    public void Release(BackendReservation reservation)
        => _ = LaterAsync(() => counter.Release(reservation));

    private async Task LaterAsync(Action update)
    {
        await delays.Delay(HalfTrip, CancellationToken.None).ConfigureAwait(false);
        update();
    }
}
