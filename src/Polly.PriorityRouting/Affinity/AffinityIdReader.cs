using System.Text.Json;

namespace Polly.PriorityRouting;

/// <summary>
/// Reads the ids a creating answer carries from its first bytes: a top-level property (<c>"id"</c> by default) of a
/// JSON body, or of the first server-sent event's data (<c>response.created</c> carries it as <c>response.id</c>); and,
/// for a nested create, a second top-level property (<c>"thread_id"</c> of <c>POST /threads/runs</c>).
/// </summary>
internal static class AffinityIdReader
{
    /// <summary>The outcome of one look at the bytes seen so far.</summary>
    public enum Result
    {
        /// <summary>More bytes may hold an id not found yet.</summary>
        NeedMore,

        /// <summary>Nothing more to find: every id asked for was found, or cannot be there.</summary>
        Done,
    }

    /// <summary>Looks for the ids in <paramref name="prefix"/>, the first bytes of the answer.</summary>
    /// <param name="prefix">The bytes seen so far.</param>
    /// <param name="eventStream">Whether the answer is a server-sent event stream.</param>
    /// <param name="complete">Whether no more bytes will be looked at.</param>
    /// <param name="idProperty">The property that holds the created id, or <see langword="null"/>.</param>
    /// <param name="parentProperty">A second property that holds an id, or <see langword="null"/>.</param>
    /// <param name="id">The value of <paramref name="idProperty"/>, once found.</param>
    /// <param name="parentId">The value of <paramref name="parentProperty"/>, once found.</param>
    /// <returns>Whether more bytes could hold more.</returns>
    public static Result TryRead(
        ReadOnlySpan<byte> prefix, bool eventStream, bool complete, string? idProperty, string? parentProperty, out string? id, out string? parentId)
    {
        id = null;
        parentId = null;
        if (eventStream)
        {
            var data = FindData(prefix);
            if (data < 0)
            {
                return complete ? Result.Done : Result.NeedMore;
            }

            prefix = prefix[data..];
        }

        var reader = new Utf8JsonReader(prefix, isFinalBlock: complete, state: default);
        var more = complete ? Result.Done : Result.NeedMore;
        try
        {
            // Top-level properties (a JSON answer, or an event whose object is the created one), or "response"'s.
            var inResponse = false;
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartObject when reader.CurrentDepth == 0:
                        continue;
                    case JsonTokenType.PropertyName when reader.CurrentDepth == 1 || (reader.CurrentDepth == 2 && inResponse):
                        if (idProperty is not null && id is null && reader.ValueTextEquals(idProperty))
                        {
                            if (!reader.Read())
                            {
                                return more;
                            }

                            id = ValueOf(ref reader);
                        }
                        else if (parentProperty is not null && parentId is null && reader.ValueTextEquals(parentProperty))
                        {
                            if (!reader.Read())
                            {
                                return more;
                            }

                            parentId = ValueOf(ref reader);
                        }
                        else if (eventStream && reader.CurrentDepth == 1 && reader.ValueTextEquals("response"u8))
                        {
                            if (!reader.Read())
                            {
                                return more;
                            }

                            inResponse = reader.TokenType == JsonTokenType.StartObject;
                            continue;
                        }
                        else if (!reader.TrySkip())
                        {
                            return more;
                        }

                        if ((idProperty is null || id is not null) && (parentProperty is null || parentId is not null))
                        {
                            return Result.Done;
                        }

                        continue;
                    case JsonTokenType.EndObject when reader.CurrentDepth <= 1:
                        return Result.Done;
                    case JsonTokenType.StartObject or JsonTokenType.StartArray:
                        continue;
                    default:
                        if (reader.CurrentDepth == 0)
                        {
                            return Result.Done;
                        }

                        continue;
                }
            }
        }
        catch (JsonException)
        {
            return Result.Done;
        }

        return more;
    }

    /// <summary>The id the reader is on, or <see langword="null"/> when it is not a string that can be kept.</summary>
    private static string? ValueOf(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.String || reader.ValueIsEscaped || reader.ValueSpan.Length > AffinityId.MaxLength)
        {
            return null;
        }

        var value = reader.GetString();
        return value is not null && AffinityId.IsValid(value) ? value : null;
    }

    /// <summary>The offset of the first <c>data:</c> line's value, or -1 when none is complete enough yet.</summary>
    private static int FindData(ReadOnlySpan<byte> stream)
    {
        var offset = 0;
        while (offset < stream.Length)
        {
            var line = stream[offset..];
            if (line.StartsWith("data:"u8))
            {
                var start = offset + 5;
                if (start < stream.Length && stream[start] == (byte)' ')
                {
                    start++;
                }

                return start;
            }

            var newline = line.IndexOf((byte)'\n');
            if (newline < 0)
            {
                return -1;
            }

            offset += newline + 1;
        }

        return -1;
    }
}
