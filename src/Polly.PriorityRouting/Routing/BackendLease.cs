namespace Polly.PriorityRouting;

/// <summary>
/// One attempt's admission to a backend. When the attempt is the probe that ends an ejection, disposing the lease gives
/// the probe slot back unless an outcome was recorded first — so a request that fails before sending, is cancelled,
/// or meets a throwing predicate can never keep the backend out of rotation for good.
/// </summary>
/// <remarks>
/// The lease also remembers the ejection episode it was admitted in: a verdict from an attempt admitted before the
/// backend was ejected says nothing new and is ignored (see <see cref="BackendHealthTracker"/>).
/// </remarks>
internal readonly struct BackendLease : IDisposable
{
    public BackendLease(
        RoutedBackend backend, BackendHealth? health, long probeToken, long episode, InFlightSlot? slot = null, ReservationTicket? reservation = null, long spendTicket = 0)
    {
        Backend = backend;
        Health = health;
        ProbeToken = probeToken;
        Episode = episode;
        Slot = slot;
        Reservation = reservation;
        SpendTicket = spendTicket;
    }

    public RoutedBackend Backend { get; }

    /// <summary>Gets the backend's tracked health, or <see langword="null"/> while it has never failed.</summary>
    public BackendHealth? Health { get; }

    /// <summary>Gets the probe slot this lease holds; 0 when it is not the probe.</summary>
    public long ProbeToken { get; }

    /// <summary>Gets the ejection episode the attempt was admitted in.</summary>
    public long Episode { get; }

    public bool IsProbe => ProbeToken != 0;

    /// <summary>Gets the attempt's place among its backend's requests in flight; <see langword="null"/> when the backend has no cap.</summary>
    public InFlightSlot? Slot { get; }

    /// <summary>
    /// Gets the attempt's counted shared reservation (<see cref="IBackendReservationStore"/>); <see langword="null"/>
    /// when the store holds none.
    /// </summary>
    public ReservationTicket? Reservation { get; }

    /// <summary>
    /// Gets the ticket of the attempt's spend in the budget view (see <see cref="SpendLog"/>): its answer's count includes
    /// the spends up to it; 0 when it spent nothing.
    /// </summary>
    public long SpendTicket { get; }

    /// <summary>Returns this lease holding <paramref name="slot"/> too.</summary>
    public BackendLease WithSlot(InFlightSlot? slot) => new(Backend, Health, ProbeToken, Episode, slot, Reservation, SpendTicket);

    /// <summary>Returns this lease holding <paramref name="reservation"/> too.</summary>
    public BackendLease WithReservation(ReservationTicket? reservation) => new(Backend, Health, ProbeToken, Episode, Slot, reservation, SpendTicket);

    /// <summary>Returns this lease with the ticket of its spend in the budget view.</summary>
    public BackendLease WithSpend(long spendTicket) => new(Backend, Health, ProbeToken, Episode, Slot, Reservation, spendTicket);

    /// <summary>
    /// Gives the probe slot back if the attempt ended without a verdict, the in-flight slot unless the answer's
    /// watched body took it, and a shared reservation nothing settled (the attempt ended before the backend counted it).
    /// </summary>
    public void Dispose()
    {
        if (ProbeToken != 0)
        {
            Health!.ReleaseProbe(ProbeToken);
        }

        Slot?.EndAttempt();
        Reservation?.Release();
    }
}
