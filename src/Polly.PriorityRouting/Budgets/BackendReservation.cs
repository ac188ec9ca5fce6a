namespace Polly.PriorityRouting;

/// <summary>
/// The answer of an <see cref="IBackendReservationStore"/> to one attempt's reservation: granted (with what the store
/// needs to correct or release it later), refused (with the time until the budget refills), or unknown.
/// </summary>
/// <remarks>
/// <see cref="Sequence"/> and <see cref="Offset"/> are the store's own: the strategy hands them back unchanged to
/// <see cref="IBackendReservationStore.Correct"/> and <see cref="IBackendReservationStore.Release"/>. A store that
/// counted a reservation although it has no verdict (it knows no budget yet) returns <see cref="Unknown"/> with them
/// set; the strategy then corrects or releases it like a granted one.
/// </remarks>
public readonly struct BackendReservation
{
    /// <summary>The shortest <see cref="RetryAfter"/> of a refusal: a refused backend is never "free again now".</summary>
    public static readonly TimeSpan MinRetryAfter = TimeSpan.FromMilliseconds(1);

    private BackendReservation(
        BackendReservationStatus status, BackendStateKey key, long cost, DateTimeOffset reservedAt, TimeSpan retryAfter, long sequence, long offset, bool holdsClaim = false)
    {
        HoldsClaim = holdsClaim;
        Status = status;
        Key = key;
        Cost = cost;
        ReservedAt = reservedAt;
        RetryAfter = retryAfter;
        Sequence = sequence;
        Offset = offset;
    }

    /// <summary>Gets the store's answer.</summary>
    public BackendReservationStatus Status { get; }

    /// <summary>Gets the backend (and partition) whose budget was asked.</summary>
    public BackendStateKey Key { get; }

    /// <summary>Gets the estimated cost in tokens that was asked for (0: unknown; the request still counts one request).</summary>
    public long Cost { get; }

    /// <summary>Gets when the reservation was made, on the reserving process's clock.</summary>
    public DateTimeOffset ReservedAt { get; }

    /// <summary>Gets how long until the refused budget refills; zero unless <see cref="Status"/> is <see cref="BackendReservationStatus.Refused"/>.</summary>
    public TimeSpan RetryAfter { get; }

    /// <summary>Gets a value the store chose to identify the reservation (for example its place in the budget's count); 0 when it counted nothing.</summary>
    public long Sequence { get; }

    /// <summary>
    /// Gets a second value the store chose to keep with the reservation (for example how many tokens had been reserved
    /// up to and including it).
    /// </summary>
    public long Offset { get; }

    /// <summary>
    /// Gets a value indicating whether the refusal holds a claim: the store set the cost aside in the refill
    /// <see cref="RetryAfter"/> names, for the same claimant only (see <see cref="IBackendReservationStore"/>'s overload
    /// with a claimant).
    /// </summary>
    public bool HoldsClaim { get; }

    /// <summary>Gets a value indicating whether the store counted the reservation: it must then be corrected or released.</summary>
    public bool IsCounted => Sequence != 0;

    /// <summary>Returns a granted reservation.</summary>
    /// <param name="key">The backend (and partition).</param>
    /// <param name="cost">The estimated cost taken.</param>
    /// <param name="reservedAt">When it was taken, on the reserving process's clock.</param>
    /// <param name="sequence">The store's identification of the reservation; not 0.</param>
    /// <param name="offset">The store's second value (see <see cref="Offset"/>).</param>
    /// <returns>The reservation.</returns>
    public static BackendReservation Granted(BackendStateKey key, long cost, DateTimeOffset reservedAt, long sequence, long offset)
        => new(BackendReservationStatus.Granted, key, cost, reservedAt, TimeSpan.Zero, sequence, offset);

    /// <summary>Returns a refusal.</summary>
    /// <param name="key">The backend (and partition).</param>
    /// <param name="cost">The estimated cost that did not fit.</param>
    /// <param name="retryAfter">How long until the budget refills; at least <see cref="MinRetryAfter"/> is kept.</param>
    /// <returns>The refusal.</returns>
    public static BackendReservation Refused(BackendStateKey key, long cost, TimeSpan retryAfter)
        => new(BackendReservationStatus.Refused, key, cost, default, retryAfter > MinRetryAfter ? retryAfter : MinRetryAfter, 0, 0);

    /// <summary>
    /// Returns a refusal that holds a claim: the store set <paramref name="cost"/> aside in the refill due in
    /// <paramref name="retryAfter"/>, and grants it to the same claimant when it comes back then.
    /// </summary>
    /// <param name="key">The backend (and partition).</param>
    /// <param name="cost">The estimated cost that did not fit now, set aside in the claimed refill.</param>
    /// <param name="retryAfter">How long until the claimed refill; at least <see cref="MinRetryAfter"/> is kept.</param>
    /// <returns>The refusal.</returns>
    public static BackendReservation Claimed(BackendStateKey key, long cost, TimeSpan retryAfter)
        => new(BackendReservationStatus.Refused, key, cost, default, retryAfter > MinRetryAfter ? retryAfter : MinRetryAfter, 0, 0, holdsClaim: true);

    /// <summary>
    /// Returns an answer without a verdict: the process's budget view decides. Pass <paramref name="sequence"/> when the
    /// store counted the reservation anyway (a budget it knows nothing of yet), 0 otherwise.
    /// </summary>
    /// <param name="key">The backend (and partition).</param>
    /// <param name="cost">The estimated cost.</param>
    /// <param name="reservedAt">When it was counted, on the reserving process's clock.</param>
    /// <param name="sequence">The store's identification of the reservation, or 0 when it counted nothing.</param>
    /// <param name="offset">The store's second value (see <see cref="Offset"/>).</param>
    /// <returns>The answer.</returns>
    public static BackendReservation Unknown(BackendStateKey key, long cost, DateTimeOffset reservedAt, long sequence, long offset)
        => new(BackendReservationStatus.Unknown, key, cost, reservedAt, TimeSpan.Zero, sequence, offset);

    /// <summary>Returns the status, the key and the cost.</summary>
    /// <returns>For example <c>Granted ptu@https://ptu.example.com [gpt-4o] 1200</c>.</returns>
    public override string ToString() => $"{Status} {Key} {Cost}";
}
