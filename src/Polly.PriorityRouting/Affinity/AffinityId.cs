namespace Polly.PriorityRouting;

/// <summary>An id a request refers to, with its kind.</summary>
/// <param name="Value">The id.</param>
/// <param name="Kind">What it names.</param>
internal readonly record struct AffinityId(string Value, AffinityKind Kind)
{
    /// <summary>The longest id kept: ids come from callers and backends, and OpenAI's are far shorter.</summary>
    public const int MaxLength = 128;

    public bool IsEmpty => Kind == AffinityKind.None;

    /// <summary>Names the kind for error messages: "stored response", "file", …</summary>
    public static string Describe(AffinityKind kind) => kind switch
    {
        AffinityKind.Response => "stored response",
        AffinityKind.Conversation => "conversation",
        AffinityKind.File => "file",
        AffinityKind.Batch => "batch",
        AffinityKind.VectorStore => "vector store",
        AffinityKind.Container => "container",
        AffinityKind.Thread => "Assistants thread",
        AffinityKind.Assistant => "assistant",
        _ => "id",
    };

    /// <summary>An id is short and made of letters, digits, '-', '_' and '.': anything else is not kept.</summary>
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
    public override string ToString() => $"{Describe(Kind)} '{Value}'";
}
