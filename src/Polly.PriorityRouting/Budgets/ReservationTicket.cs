namespace Polly.PriorityRouting;

/// <summary>
/// A counted shared reservation held by an attempt's lease (see <see cref="BackendLease.Reservation"/>), settled exactly
/// once: corrected by what the answer reported, kept when the backend may have counted the attempt, or released when
/// it did not (a 429, a refused connection, or an attempt that ended without a verdict: the caller cancelled).
/// </summary>
/// <remarks>The store's calls are on the answer's path: they must not throw, and a store that does anyway fails nothing.</remarks>
internal sealed class ReservationTicket(IBackendReservationStore store, BackendReservation reservation)
{
    private int _settled;

    public BackendReservation Reservation => reservation;

    /// <summary>Gets a value indicating whether the ticket was corrected, kept or released.</summary>
    public bool IsSettled => Volatile.Read(ref _settled) != 0;

    /// <summary>Corrects the shared budget with an answer's report; without one, keeps the reservation as counted.</summary>
    public void Correct(BackendReservationReport? report)
    {
        if (TrySettle() && report is { } reported)
        {
            Call(static (store, reservation, report) => store.Correct(reservation, report), reported);
        }
    }

    /// <summary>Keeps the reservation as counted: the backend may have counted the attempt, and no answer reports it.</summary>
    public void Keep() => TrySettle();

    /// <summary>Gives the reservation back: the backend did not count the attempt. Does nothing once settled.</summary>
    public void Release()
    {
        if (TrySettle())
        {
            Call(static (store, reservation, _) => store.Release(reservation), default);
        }
    }

    private bool TrySettle() => Interlocked.Exchange(ref _settled, 1) == 0;

    private void Call(Action<IBackendReservationStore, BackendReservation, BackendReservationReport> call, BackendReservationReport report)
    {
        try
        {
            call(store, reservation, report);
        }
        catch (Exception)
        {
            // A failing store never fails a request: its count is corrected by the next answer, or refills.
        }
    }
}
