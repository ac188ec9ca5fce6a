namespace Polly.PriorityRouting;

/// <summary>
/// Identifies an entry of an <see cref="IBackendStateStore"/>: a backend, and optionally one throttle partition of it
/// (for example one Azure OpenAI deployment).
/// </summary>
/// <remarks>
/// <see cref="Backend"/> is the backend's identity, not its display name: its name and its address together (see
/// <see cref="PriorityBackend.Name"/>), so that two unrelated clients that both call some backend <c>"primary"</c> never
/// share state by accident, while two clients that configure the same backend alike do.
/// </remarks>
public readonly struct BackendStateKey : IEquatable<BackendStateKey>
{
    /// <summary>
    /// Initializes a new instance of the <see cref="BackendStateKey"/> struct.
    /// </summary>
    /// <param name="backend">The backend's identity.</param>
    /// <param name="partition">The throttle partition, or <see langword="null"/> (or empty) for the whole backend.</param>
    public BackendStateKey(string backend, string? partition = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(backend);
        Backend = backend;

        // An empty partition is no partition: one key for the whole backend, whatever a partition function returns.
        Partition = string.IsNullOrEmpty(partition) ? null : partition;
    }

    /// <summary>Gets the backend's identity: its name and its address without query, e.g. <c>ptu@https://ptu.example.com</c>.</summary>
    public string Backend { get; }

    /// <summary>Gets the throttle partition, or <see langword="null"/> when the entry applies to the whole backend.</summary>
    public string? Partition { get; }

    /// <summary>Gets the key of the whole backend this key belongs to.</summary>
    public BackendStateKey WholeBackend => Partition is null ? this : new BackendStateKey(Backend);

    /// <summary>Returns the key of one throttle partition of the same backend.</summary>
    /// <param name="partition">The partition.</param>
    /// <returns>The partition's key.</returns>
    public BackendStateKey ForPartition(string partition) => new(Backend, partition);

    /// <inheritdoc/>
    public bool Equals(BackendStateKey other)
        => string.Equals(Backend, other.Backend, StringComparison.Ordinal) && string.Equals(Partition, other.Partition, StringComparison.Ordinal);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is BackendStateKey other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode()
        => Partition is null
            ? StringComparer.Ordinal.GetHashCode(Backend ?? string.Empty)
            : HashCode.Combine(StringComparer.Ordinal.GetHashCode(Backend ?? string.Empty), StringComparer.Ordinal.GetHashCode(Partition));

    /// <summary>Returns the identity, and the partition in brackets when there is one.</summary>
    /// <returns>For example <c>ptu@https://ptu.example.com [gpt-4o]</c>.</returns>
    public override string ToString() => Partition is null ? Backend ?? string.Empty : $"{Backend} [{Partition}]";

    /// <summary>Compares two keys for equality.</summary>
    /// <param name="left">The first key.</param>
    /// <param name="right">The second key.</param>
    /// <returns><see langword="true"/> when both are equal.</returns>
    public static bool operator ==(BackendStateKey left, BackendStateKey right) => left.Equals(right);

    /// <summary>Compares two keys for inequality.</summary>
    /// <param name="left">The first key.</param>
    /// <param name="right">The second key.</param>
    /// <returns><see langword="true"/> when the keys differ.</returns>
    public static bool operator !=(BackendStateKey left, BackendStateKey right) => !left.Equals(right);
}
