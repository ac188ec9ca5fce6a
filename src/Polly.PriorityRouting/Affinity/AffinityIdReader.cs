using System.Text.Json;

namespace Polly.PriorityRouting;

/// <summary>
/// Reads the id of a created object from the first bytes of its answer: the top-level <c>"id"</c> of a JSON body, or of
/// the first server-sent event's data (<c>response.created</c> carries it as <c>response.id</c>).
/// </summary>
internal static class AffinityIdReader
{
    /// <summary>The outcome of one look at the bytes seen so far.</summary>
    public enum Result
    {
        /// <summary>More bytes are needed.</summary>
        NeedMore,

        /// <summary>The id was found.</summary>
        Found,

        /// <summary>There is no id to find (not JSON, no id where expected).</summary>
        None,
    }

    /// <summary>Looks for the id in <paramref name="prefix"/>, the first bytes of the answer.</summary>
    /// <param name="prefix">The bytes seen so far.</param>
    /// <param name="eventStream">Whether the answer is a server-sent event stream.</param>
    /// <param name="complete">Whether no more bytes will come.</param>
    /// <param name="id">The id found.</param>
    /// <returns>Whether the id was found, is not there, or needs more bytes.</returns>
    public static Result TryRead(ReadOnlySpan<byte> prefix, bool eventStream, bool complete, out string? id)
    {
        id = null;
        if (eventStream)
        {
            var data = FindData(prefix);
            if (data < 0)
            {
                return complete ? Result.None : Result.NeedMore;
            }

            prefix = prefix[data..];
        }

        var reader = new Utf8JsonReader(prefix, isFinalBlock: complete, state: default);
        try
        {
            // Top-level "id" (a JSON answer, or an event whose object is the created one), or "response"."id".
            var inResponse = false;
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartObject when reader.CurrentDepth == 0:
                        continue;
                    case JsonTokenType.PropertyName when reader.CurrentDepth == 1:
                        if (reader.ValueTextEquals("id"u8))
                        {
                            return ReadValue(ref reader, complete, out id);
                        }

                        if (eventStream && reader.ValueTextEquals("response"u8))
                        {
                            if (!reader.Read())
                            {
                                return complete ? Result.None : Result.NeedMore;
                            }

                            inResponse = reader.TokenType == JsonTokenType.StartObject;
                            continue;
                        }

                        if (!reader.TrySkip())
                        {
                            return complete ? Result.None : Result.NeedMore;
                        }

                        continue;
                    case JsonTokenType.PropertyName when reader.CurrentDepth == 2 && inResponse:
                        if (reader.ValueTextEquals("id"u8))
                        {
                            return ReadValue(ref reader, complete, out id);
                        }

                        if (!reader.TrySkip())
                        {
                            return complete ? Result.None : Result.NeedMore;
                        }

                        continue;
                    case JsonTokenType.EndObject when reader.CurrentDepth <= 1:
                        return Result.None;
                    case JsonTokenType.StartObject or JsonTokenType.StartArray:
                        continue;
                    default:
                        if (reader.CurrentDepth == 0)
                        {
                            return Result.None;
                        }

                        continue;
                }
            }
        }
        catch (JsonException)
        {
            return Result.None;
        }

        return complete ? Result.None : Result.NeedMore;
    }

    private static Result ReadValue(ref Utf8JsonReader reader, bool complete, out string? id)
    {
        id = null;
        if (!reader.Read())
        {
            return complete ? Result.None : Result.NeedMore;
        }

        if (reader.TokenType != JsonTokenType.String || reader.ValueIsEscaped || reader.ValueSpan.Length > AffinityId.MaxLength)
        {
            return Result.None;
        }

        var value = reader.GetString();
        if (value is null || !AffinityId.IsValid(value))
        {
            return Result.None;
        }

        id = value;
        return Result.Found;
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
