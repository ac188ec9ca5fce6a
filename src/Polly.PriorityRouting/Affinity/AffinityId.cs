namespace Polly.PriorityRouting;

/// <summary>An id of server-side state that a request refers to, with its kind.</summary>
/// <param name="Value">The id, as the backend created it.</param>
/// <param name="Kind">What it names.</param>
public readonly record struct AffinityId(string Value, AffinityIdKind Kind)
{
    /// <summary>The longest id kept: ids come from callers and backends, and OpenAI's are far shorter.</summary>
    public const int MaxLength = 128;

    /// <summary>Gets a value indicating whether this is no id (the default value).</summary>
    public bool IsEmpty => Kind is null;

    /// <summary>
    /// Whether <paramref name="id"/> can be kept: at most <see cref="MaxLength"/> characters, all letters, digits,
    /// <c>-</c>, <c>_</c> or <c>.</c>. Ids that are not are ignored (the request is routed normally).
    /// </summary>
    /// <param name="id">The candidate id.</param>
    /// <returns><see langword="true"/> when the id can be kept.</returns>
    public static bool IsValid(ReadOnlySpan<char> id)
    {
        if (id.IsEmpty || id.Length > MaxLength)
        {
            return false;
        }

        foreach (var c in id)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not '-' and not '_' and not '.')
            {
                return false;
            }
        }

        return true;
    }

    /// <inheritdoc/>
    public override string ToString() => IsEmpty ? string.Empty : $"{Kind.Description} '{Value}'";
}
