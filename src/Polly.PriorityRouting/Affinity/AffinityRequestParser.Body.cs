using System.Text.Json;

namespace Polly.PriorityRouting;

/// <summary>The body half of <see cref="AffinityRequestParser"/>: ids and soft-affinity keys in JSON request bodies.</summary>
internal static partial class AffinityRequestParser
{
    /// <summary>Completes a request that <see cref="Parse"/> found to need its body.</summary>
    public static AffinityRequest ParseBody(ReadOnlySpan<byte> body, AffinityRequest fromPath)
    {
        // A chat body is parsed only if a vectorized search finds a key property in it: most carry none.
        if (fromPath.ReadsStickyKeyOnly && !MayHaveStickyKey(body))
        {
            return fromPath;
        }

        var (referenced, sticky, unstored) = ScanBody(body, findStore: fromPath.Creates == OpenAIAffinityKinds.Response);
        return fromPath with
        {
            Referenced = referenced,
            StickyKey = referenced.IsEmpty ? sticky : null,
            CreatesUnstored = unstored && fromPath.Creates == OpenAIAffinityKinds.Response,
        };
    }

    /// <summary>
    /// Finds the first id-valued property of a JSON body, its top-level soft-affinity key, and whether it has a
    /// top-level <c>"store": false</c> — searched past the id only when <paramref name="findStore"/> (a new response).
    /// </summary>
    internal static (AffinityId Id, string? StickyKey, bool Unstored) ScanBody(ReadOnlySpan<byte> json, bool findStore = false)
    {
        string? sticky = null;
        var unstored = false;
        var stickyIsCacheKey = false;
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip });
        try
        {
            while (reader.Read())
            {
                if (reader.TokenType != JsonTokenType.PropertyName)
                {
                    continue;
                }

                if (reader.CurrentDepth == 1 && !stickyIsCacheKey &&
                    (reader.ValueTextEquals("prompt_cache_key"u8) || (sticky is null && reader.ValueTextEquals("user"u8))))
                {
                    var cacheKey = reader.ValueTextEquals("prompt_cache_key"u8);
                    if (reader.Read() && reader.TokenType == JsonTokenType.String && reader.ValueSpan.Length <= MaxStickyKeyLength &&
                        reader.GetString() is { Length: > 0 } key)
                    {
                        (sticky, stickyIsCacheKey) = (key, cacheKey);
                    }

                    continue;
                }

                if (reader.CurrentDepth > 1 && reader.ValueTextEquals("id"u8))
                {
                    // A reasoning item sent back in "input": {"type":"reasoning","id":"rs_…","encrypted_content":…}.
                    if (reader.Read() && reader.TokenType == JsonTokenType.String && reader.ValueSpan.StartsWith("rs_"u8) &&
                        Id(ref reader, OpenAIAffinityKinds.ReasoningItem) is { IsEmpty: false } item)
                    {
                        return (item, null, unstored || (findStore && IsUnstored(ref reader)));
                    }

                    continue;
                }

                if (reader.CurrentDepth == 1 && reader.ValueTextEquals("store"u8))
                {
                    unstored = reader.Read() && reader.TokenType == JsonTokenType.False;
                    continue;
                }

                var kind = PropertyKind(ref reader);
                if (kind is null || !reader.Read())
                {
                    continue;
                }

                if (reader.TokenType == JsonTokenType.String)
                {
                    if (Id(ref reader, kind) is { IsEmpty: false } id)
                    {
                        return (id, null, unstored || (findStore && IsUnstored(ref reader)));
                    }
                }
                else if (reader.TokenType == JsonTokenType.StartArray && kind == OpenAIAffinityKinds.VectorStore)
                {
                    if (reader.Read() && reader.TokenType == JsonTokenType.String && Id(ref reader, kind) is { IsEmpty: false } id)
                    {
                        return (id, null, unstored || (findStore && IsUnstored(ref reader)));
                    }
                }
                else if (reader.TokenType == JsonTokenType.StartObject && kind == OpenAIAffinityKinds.Conversation)
                {
                    // "conversation": {"id": "conv_…"}
                    var depth = reader.CurrentDepth;
                    while (reader.Read() && reader.CurrentDepth > depth)
                    {
                        if (reader.TokenType == JsonTokenType.PropertyName && reader.CurrentDepth == depth + 1 && reader.ValueTextEquals("id"u8) &&
                            reader.Read() && reader.TokenType == JsonTokenType.String && Id(ref reader, kind) is { IsEmpty: false } id)
                        {
                            return (id, null, unstored || (findStore && IsUnstored(ref reader)));
                        }
                    }
                }
            }
        }
        catch (JsonException)
        {
            // Not JSON after all: the backend will say so; the request is routed normally.
            return default;
        }

        return (default, sticky, unstored);
    }

    /// <summary>Whether the rest of the body has a top-level <c>"store": false</c>; nested values are skipped whole.</summary>
    private static bool IsUnstored(ref Utf8JsonReader reader)
    {
        try
        {
            while (reader.Read())
            {
                if (reader.TokenType != JsonTokenType.PropertyName || reader.CurrentDepth != 1)
                {
                    continue;
                }

                if (reader.ValueTextEquals("store"u8))
                {
                    return reader.Read() && reader.TokenType == JsonTokenType.False;
                }

                reader.Read();
                reader.Skip();
            }
        }
        catch (JsonException)
        {
            // The id found before stands; an unreadable rest only means the response id is pinned, as by default.
        }

        return false;
    }

    /// <summary>
    /// Whether a JSON body may hold a <c>"prompt_cache_key"</c> or <c>"user"</c> property: a byte search, so that
    /// bodies without either (<c>"role":"user"</c> is a value, not a property) are not parsed.
    /// </summary>
    internal static bool MayHaveStickyKey(ReadOnlySpan<byte> json)
    {
        if (json.IndexOf("\"prompt_cache_key\""u8) >= 0)
        {
            return true;
        }

        var rest = json;
        while (rest.IndexOf("\"user\""u8) is >= 0 and var at)
        {
            rest = rest[(at + 6)..];
            var next = rest.TrimStart(" \t\r\n"u8);
            if (!next.IsEmpty && next[0] == (byte)':')
            {
                return true;
            }
        }

        return false;
    }

    private static AffinityId Id(ref Utf8JsonReader reader, AffinityIdKind kind)
    {
        if (reader.ValueSpan.Length > AffinityId.MaxLength || reader.ValueIsEscaped)
        {
            return default;
        }

        var value = reader.GetString();
        return value is not null && AffinityId.IsValid(value) ? new AffinityId(value, kind) : default;
    }

    private static AffinityIdKind? PropertyKind(ref Utf8JsonReader reader)
    {
        if (reader.ValueIsEscaped || reader.ValueSpan.Length > 32)
        {
            return null;
        }

        var name = reader.ValueSpan;
        return name switch
        {
            _ when name.SequenceEqual("previous_response_id"u8) => OpenAIAffinityKinds.Response,
            _ when name.SequenceEqual("conversation"u8) => OpenAIAffinityKinds.Conversation,
            _ when name.SequenceEqual("file_id"u8) || name.SequenceEqual("input_file_id"u8) => OpenAIAffinityKinds.File,
            _ when name.SequenceEqual("vector_store_ids"u8) => OpenAIAffinityKinds.VectorStore,
            _ when name.SequenceEqual("thread_id"u8) => OpenAIAffinityKinds.Thread,
            _ when name.SequenceEqual("assistant_id"u8) => OpenAIAffinityKinds.Assistant,
            _ when name.SequenceEqual("container"u8) => OpenAIAffinityKinds.Container,
            _ => null,
        };
    }
}
