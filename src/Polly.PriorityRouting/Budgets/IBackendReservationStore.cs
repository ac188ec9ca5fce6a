namespace Polly.PriorityRouting;

/// <summary>
/// Optionally implemented by an <see cref="IBackendStateStore"/> shared by several processes: before each attempt the
/// strategy atomically reserves the request's estimated cost against one budget per backend and partition that every
/// process sees, so that replicas with completions in flight do not all spend the same room.
/// </summary>
/// <remarks>
/// <para>
/// Used only when the strategy's <c>TokenBudgets</c> is on. A reservation that is <see cref="BackendReservationStatus.Granted"/>
/// admits the attempt (and is also counted in the process's own budget view); <see cref="BackendReservationStatus.Refused"/>
/// skips the backend for this request only — no mark, no health effect, nothing counted — and its
/// <see cref="BackendReservation.RetryAfter"/> enters the exhausted answer's <c>Retry-After</c>;
/// <see cref="BackendReservationStatus.Unknown"/> leaves the decision to the process's own budget view (fail open).
/// </para>
/// <para>
/// <see cref="ReserveAsync(BackendStateKey, long, double, double, long, DateTimeOffset, CancellationToken)"/> is on the request's path: one round trip at most, with a short bound of its own; it
/// should not throw (a thrown exception is taken as <see cref="BackendReservationStatus.Unknown"/>) and should stop at
/// the caller's cancellation. <see cref="Correct"/> and <see cref="Release"/> are called on the path of an answer: they
/// must not block, perform I/O on the caller's thread or throw, and may coalesce and drop what they cannot deliver.
/// What the store keeps must be bounded whatever peers write into it.
/// </para>
/// <para>
/// A store that wraps another must forward the overload with a claimant (it is the one the strategy calls) and
/// <see cref="ReleaseClaim"/>: a wrapper that implements only the other overload still works, but its callers never
/// claim — they are told the refill as before, and compete for it with the newcomers when they come back (fail safe,
/// not fair); one that drops <see cref="ReleaseClaim"/> leaves claims nobody comes for to their grace.
/// </para>
/// </remarks>
public interface IBackendReservationStore
{
    /// <summary>Reserves an attempt's estimated cost against the shared budget of <paramref name="key"/>.</summary>
    /// <param name="key">The backend, and the request's partition of it (its deployment, for a mapped model).</param>
    /// <param name="cost">The request's estimated tokens (0 when unknown: it then counts one request only).</param>
    /// <param name="headroom">
    /// The share of the budget's limit, from 0 to 1, that this reservation must leave free after its cost (kept for
    /// foreground requests): 0 for a foreground request; for a background one, the configured headroom. As in the
    /// process's own view, a request too large to leave it is admitted on a full budget only (else it would never be).
    /// </param>
    /// <param name="promised">
    /// The share of the budget's limit, from 0 to 1, that the reserving process promised foreground callers in the
    /// refill under way: left free too, strictly (no request is too large for it), beyond <paramref name="headroom"/>.
    /// 0 for a foreground request.
    /// </param>
    /// <param name="now">The reserving process's current time (<see cref="BackendReservation.ReservedAt"/>).</param>
    /// <param name="cancellationToken">The caller's cancellation.</param>
    /// <returns>The store's answer.</returns>
    ValueTask<BackendReservation> ReserveAsync(BackendStateKey key, long cost, double headroom, double promised, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// Reserves an attempt's estimated cost against the shared budget of <paramref name="key"/> on behalf of
    /// <paramref name="claimant"/>: a store that keeps claims sets room aside in a later refill for a foreground request it
    /// refuses (<see cref="BackendReservation.HoldsClaim"/>), and grants that room to the same claimant when it comes back,
    /// whichever process it comes back through. The strategy calls this overload; by default it ignores the claimant.
    /// </summary>
    /// <param name="key">The backend, and the request's partition of it (its deployment, for a mapped model).</param>
    /// <param name="cost">The request's estimated tokens (0 when unknown: it then counts one request only).</param>
    /// <param name="headroom">The share of the limit kept for foreground requests (see the other overload).</param>
    /// <param name="promised">The share of the limit promised to foreground callers (see the other overload).</param>
    /// <param name="claimant">
    /// The request's fingerprint, the same on every process for the same request (its method, path and query, and
    /// body), so that a caller sent back is recognised when it retries; 0 for a request that never claims (a background
    /// one, or one whose body cannot be read twice).
    /// </param>
    /// <param name="now">The reserving process's current time (<see cref="BackendReservation.ReservedAt"/>).</param>
    /// <param name="cancellationToken">The caller's cancellation.</param>
    /// <returns>The store's answer.</returns>
    ValueTask<BackendReservation> ReserveAsync(BackendStateKey key, long cost, double headroom, double promised, long claimant, DateTimeOffset now, CancellationToken cancellationToken)
        => ReserveAsync(key, cost, headroom, promised, now, cancellationToken);

    /// <summary>
    /// Gives back the room <paramref name="claimant"/> claimed in <paramref name="key"/>'s shared budget (see the
    /// overload of <c>ReserveAsync</c> with a claimant): the request was admitted elsewhere, or holds a sooner claim on
    /// another backend, and will not come for it. Called on the request's path: must not block, perform I/O on the
    /// caller's thread or throw; may drop what it cannot deliver (the claim then ends with its grace). By default it does
    /// nothing.
    /// </summary>
    /// <param name="key">The backend, and the request's partition of it, whose refusal held the claim.</param>
    /// <param name="claimant">The request's fingerprint, as it was passed to <c>ReserveAsync</c>.</param>
    void ReleaseClaim(BackendStateKey key, long claimant)
    {
    }

    /// <summary>
    /// Corrects the shared budget with what the answer to a reserved attempt reported (see <see cref="BackendReservationReport"/>).
    /// </summary>
    /// <param name="reservation">The attempt's reservation, as <see cref="ReserveAsync(BackendStateKey, long, double, double, long, DateTimeOffset, CancellationToken)"/> returned it.</param>
    /// <param name="report">What the answer reported, and when the attempt was sent.</param>
    void Correct(BackendReservation reservation, BackendReservationReport report);

    /// <summary>
    /// Gives a reservation back because the backend did not count it: it answered 429, the connection failed, or the
    /// attempt ended before it was sent (the caller cancelled while it travelled) or with no verdict recorded (the caller
    /// cancelled in flight).
    /// </summary>
    /// <param name="reservation">The attempt's reservation, as <see cref="ReserveAsync(BackendStateKey, long, double, double, long, DateTimeOffset, CancellationToken)"/> returned it.</param>
    void Release(BackendReservation reservation);
}
