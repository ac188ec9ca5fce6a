namespace Polly.PriorityRouting;

/// <summary>
/// Keeps which backends (and which throttle partitions of them) are out of rotation, and until when, for every pipeline
/// that shares it.
/// </summary>
/// <remarks>
/// <para>
/// A store is shared by design: every <see cref="HttpClient"/>, every rebuild of a pipeline (options reload) and, with a
/// distributed implementation, every replica of an app that uses the same store skips a backend that one of them saw
/// throttled. Entries are keyed by <see cref="BackendStateKey"/>: the backend's identity (name and address) and an
/// optional throttle partition.
/// </para>
/// <para>
/// Implementations must be thread-safe. <see cref="TryGetUnavailability"/> is on the hot path of every attempt: it must
/// not block, perform I/O or allocate. <see cref="MarkUnavailableAsync"/> keeps the later of two deadlines, so that a
/// repeated failure extends an unavailability and never shortens it, and the later of two
/// <see cref="BackendUnavailability.MarkedAt"/> (for a deadline learned from elsewhere: when this process learned it), so
/// that pipelines honour a far deadline at most their own longest cooldown from its latest mark; a store that does not
/// keep it returns <see langword="default"/>, and pipelines then count from each read. A store that fails must not fail requests:
/// implementations swallow their own errors and keep serving from local state. Every implementation bounds what it
/// holds: keys come from requests (partitions) and from peers.
/// </para>
/// </remarks>
public interface IBackendStateStore
{
    /// <summary>
    /// Reads the last known unavailability of a backend or of one of its partitions.
    /// </summary>
    /// <param name="key">The backend, and optionally the partition.</param>
    /// <param name="unavailability">The stored unavailability, possibly already expired.</param>
    /// <returns><see langword="true"/> when an entry exists, whether or not it is still active.</returns>
    /// <remarks>Callers compare <see cref="BackendUnavailability.Until"/> with their own clock.</remarks>
    bool TryGetUnavailability(BackendStateKey key, out BackendUnavailability unavailability);

    /// <summary>
    /// Marks a backend (or one of its partitions) unavailable, keeping the later deadline if it is already marked.
    /// </summary>
    /// <param name="key">The backend, and optionally the partition.</param>
    /// <param name="unavailability">The new deadline and its reason.</param>
    /// <param name="now">The caller's current time, which lets a store turn the deadline into a relative expiry.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>A task that completes when the local state is updated. Remote propagation may complete later.</returns>
    ValueTask MarkUnavailableAsync(
        BackendStateKey key,
        BackendUnavailability unavailability,
        DateTimeOffset now,
        CancellationToken cancellationToken);

    /// <summary>
    /// Lists the entries of one backend held right now — its own and its partitions' — possibly including expired ones.
    /// For snapshots, health checks and gauges: not on the request path, may allocate.
    /// </summary>
    /// <param name="backend">The backend's identity (<see cref="BackendStateKey.Backend"/>).</param>
    /// <returns>The entries.</returns>
    IReadOnlyList<KeyValuePair<BackendStateKey, BackendUnavailability>> GetEntries(string backend);
}
