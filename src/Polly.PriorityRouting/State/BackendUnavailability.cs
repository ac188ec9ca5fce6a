namespace Polly.PriorityRouting;

/// <summary>
/// The moment until which a backend is out of rotation, and why.
/// </summary>
public readonly struct BackendUnavailability : IEquatable<BackendUnavailability>
{
    /// <summary>
    /// Initializes a new instance of the <see cref="BackendUnavailability"/> struct.
    /// </summary>
    /// <param name="until">The moment the backend becomes available again.</param>
    /// <param name="reason">Why the backend is unavailable.</param>
    public BackendUnavailability(DateTimeOffset until, BackendUnavailableReason reason)
    {
        Until = until;
        Reason = reason;
    }

    /// <summary>
    /// Initializes a new instance of the <see cref="BackendUnavailability"/> struct that knows when it was marked.
    /// </summary>
    /// <param name="until">The moment the backend becomes available again.</param>
    /// <param name="reason">Why the backend is unavailable.</param>
    /// <param name="markedAt">When the mark was made (see <see cref="MarkedAt"/>).</param>
    public BackendUnavailability(DateTimeOffset until, BackendUnavailableReason reason, DateTimeOffset markedAt)
    {
        Until = until;
        Reason = reason;
        MarkedAt = markedAt;
    }

    /// <summary>
    /// Gets the moment the backend becomes available again.
    /// </summary>
    public DateTimeOffset Until { get; }

    /// <summary>
    /// Gets why the backend is unavailable.
    /// </summary>
    public BackendUnavailableReason Reason { get; }

    /// <summary>
    /// Gets when the mark was made, on the clock of whoever made it (or, for a deadline learned from elsewhere, when this
    /// process learned it); <see langword="default"/> when unknown.
    /// </summary>
    /// <remarks>
    /// A pipeline honours a deadline at most its own longest cooldown from this moment, so that a far deadline written
    /// by a peer (a larger <c>MaxCooldown</c>, a bug, anyone who can write to the store) ends for it when its own would
    /// have. When unknown, the pipeline counts from the moment it reads the entry. Not part of equality: two
    /// unavailabilities are equal when they end at the same moment for the same reason.
    /// </remarks>
    public DateTimeOffset MarkedAt { get; }

    /// <summary>
    /// Returns whether the backend is still unavailable at <paramref name="now"/>.
    /// </summary>
    /// <param name="now">The current time.</param>
    /// <returns><see langword="true"/> while <paramref name="now"/> is before <see cref="Until"/>.</returns>
    public bool IsActiveAt(DateTimeOffset now) => now < Until;

    /// <inheritdoc/>
    public bool Equals(BackendUnavailability other) => Until == other.Until && Reason == other.Reason;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is BackendUnavailability other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Until, Reason);

    /// <inheritdoc/>
    public override string ToString() => $"{Reason} until {Until:O}";

    /// <summary>Compares two values for equality.</summary>
    /// <param name="left">The first value.</param>
    /// <param name="right">The second value.</param>
    /// <returns><see langword="true"/> when both are equal.</returns>
    public static bool operator ==(BackendUnavailability left, BackendUnavailability right) => left.Equals(right);

    /// <summary>Compares two values for inequality.</summary>
    /// <param name="left">The first value.</param>
    /// <param name="right">The second value.</param>
    /// <returns><see langword="true"/> when the values differ.</returns>
    public static bool operator !=(BackendUnavailability left, BackendUnavailability right) => !left.Equals(right);
}
