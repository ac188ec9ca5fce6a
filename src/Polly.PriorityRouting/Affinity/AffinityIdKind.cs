namespace Polly.PriorityRouting;

/// <summary>
/// What an <see cref="AffinityId"/> names — a stored response, a file, a session, … —: how long a pin of it is kept, and
/// the words the error answer uses for it.
/// </summary>
/// <remarks>
/// Kinds are compared by reference: an <see cref="AffinityIdExtractor"/> creates its kinds once and returns the same
/// instances for every request.
/// </remarks>
public sealed class AffinityIdKind
{
    /// <summary>Initializes a new instance of the <see cref="AffinityIdKind"/> class.</summary>
    /// <param name="description">
    /// The kind in words, as the error answer names it: "The <paramref name="description"/> 'id' was created on
    /// backend …" (e.g. <c>"session"</c>).
    /// </param>
    /// <param name="lifetime">
    /// How long an id of this kind stays pinned after it was created, or <see langword="null"/> for
    /// <see cref="AffinityOptions.ResourceLifetime"/>.
    /// </param>
    public AffinityIdKind(string description, TimeSpan? lifetime = null)
        : this(description, lifetime, sharesResponseLifetime: false)
    {
    }

    private AffinityIdKind(string description, TimeSpan? lifetime, bool sharesResponseLifetime)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(description);
        if (lifetime is { } value)
        {
            ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(value, TimeSpan.Zero, nameof(lifetime));
        }

        Description = description;
        Lifetime = lifetime;
        SharesResponseLifetime = sharesResponseLifetime;
    }

    /// <summary>Gets the kind in words, as error answers name it.</summary>
    public string Description { get; }

    /// <summary>
    /// Gets how long an id of this kind stays pinned after it was created; <see langword="null"/> for
    /// <see cref="AffinityOptions.ResourceLifetime"/>.
    /// </summary>
    public TimeSpan? Lifetime { get; }

    /// <summary>Gets a value indicating whether the kind is pinned for <see cref="AffinityOptions.ResponseLifetime"/>.</summary>
    internal bool SharesResponseLifetime { get; }

    /// <inheritdoc/>
    public override string ToString() => Description;

    /// <summary>A built-in kind kept for <see cref="AffinityOptions.ResponseLifetime"/> (responses, conversations).</summary>
    internal static AffinityIdKind WithResponseLifetime(string description) => new(description, null, sharesResponseLifetime: true);

    /// <summary>How long a pin of this kind is kept under <paramref name="options"/>.</summary>
    internal TimeSpan LifetimeUnder(AffinityOptions options)
        => Lifetime ?? (SharesResponseLifetime ? options.ResponseLifetime : options.ResourceLifetime);
}
