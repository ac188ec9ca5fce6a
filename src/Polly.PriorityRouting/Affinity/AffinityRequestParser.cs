using System.Buffers;
using System.Text.Json;

namespace Polly.PriorityRouting;

/// <summary>
/// Finds the ids a request refers to in the OpenAI and Azure OpenAI shapes: a path segment after a collection
/// (<c>/responses/{id}</c>, <c>/files/{id}</c>, …, under <c>/v1/</c>, <c>/openai/v1/</c> or <c>/openai/</c>) and, for JSON
/// POSTs to those collections, body properties (<c>previous_response_id</c>, <c>conversation</c>, <c>file_id</c>,
/// <c>input_file_id</c>, <c>vector_store_ids</c>, <c>thread_id</c>, <c>assistant_id</c>, <c>container</c>).
/// </summary>
/// <remarks>
/// A request whose path names no collection costs one scan of its path and allocates nothing. The body (already
/// buffered for replay) is read once with a <see cref="Utf8JsonReader"/>, into a pooled buffer.
/// </remarks>
internal static class AffinityRequestParser
{
    /// <summary>Bodies larger than this are not scanned (the request is routed on its path alone).</summary>
    internal const int MaxScannedBody = 16 * 1024 * 1024;

    /// <summary>Soft-affinity keys longer than this are ignored.</summary>
    internal const int MaxStickyKeyLength = 256;

    public static AffinityRequest Parse(HttpRequestMessage request)
    {
        var path = PathOf(request.RequestUri);
        var chat = request.Method == HttpMethod.Post && path.EndsWith("/chat/completions", StringComparison.Ordinal);
        var method = request.Method;
        var collection = AffinityKind.None;
        var firstCollection = AffinityKind.None;
        var segments = 0;
        var lastWasCollection = false;
        AffinityId referenced = default;
        var idIsLast = false;

        while (!path.IsEmpty)
        {
            var slash = path.IndexOf('/');
            var segment = slash < 0 ? path : path[..slash];
            path = slash < 0 ? [] : path[(slash + 1)..];
            if (segment.IsEmpty)
            {
                continue;
            }

            segments++;
            if (collection != AffinityKind.None && referenced.IsEmpty && LooksLikeId(segment))
            {
                referenced = new AffinityId(segment.ToString(), collection);
                idIsLast = true;
                lastWasCollection = false;
                collection = AffinityKind.None;
                continue;
            }

            idIsLast = false;
            collection = CollectionOf(segment);
            lastWasCollection = collection != AffinityKind.None;
            if (lastWasCollection && firstCollection == AffinityKind.None)
            {
                firstCollection = collection;
            }
        }

        if (firstCollection == AffinityKind.None)
        {
            // A chat completion refers to no stored state; its body may carry a soft-affinity key.
            return chat && request.Content is { } chatContent && IsJson(chatContent)
                ? new AffinityRequest(default, AffinityKind.None, false, ScanBody(chatContent, stickyOnly: true).StickyKey)
                : default;
        }

        var creates = method == HttpMethod.Post && lastWasCollection && referenced.IsEmpty && collection == firstCollection
            ? collection
            : AffinityKind.None;
        string? sticky = null;
        if (referenced.IsEmpty && method == HttpMethod.Post && request.Content is { } content && IsJson(content))
        {
            (referenced, sticky) = ScanBody(content);
        }

        // A new response chained to a stored one is created on the same backend, and is learned too.
        return new AffinityRequest(referenced, creates, method == HttpMethod.Delete && idIsLast, referenced.IsEmpty ? sticky : null);
    }

    /// <summary>Finds the first id-valued property of a JSON body, and its top-level soft-affinity key.</summary>
    internal static (AffinityId Id, string? StickyKey) ScanBody(ReadOnlySpan<byte> json)
    {
        string? sticky = null;
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

                var kind = PropertyKind(ref reader);
                if (kind == AffinityKind.None || !reader.Read())
                {
                    continue;
                }

                if (reader.TokenType == JsonTokenType.String)
                {
                    if (Id(ref reader, kind) is { IsEmpty: false } id)
                    {
                        return (id, null);
                    }
                }
                else if (reader.TokenType == JsonTokenType.StartArray && kind == AffinityKind.VectorStore)
                {
                    if (reader.Read() && reader.TokenType == JsonTokenType.String && Id(ref reader, kind) is { IsEmpty: false } id)
                    {
                        return (id, null);
                    }
                }
                else if (reader.TokenType == JsonTokenType.StartObject && kind == AffinityKind.Conversation)
                {
                    // "conversation": {"id": "conv_…"}
                    var depth = reader.CurrentDepth;
                    while (reader.Read() && reader.CurrentDepth > depth)
                    {
                        if (reader.TokenType == JsonTokenType.PropertyName && reader.CurrentDepth == depth + 1 && reader.ValueTextEquals("id"u8) &&
                            reader.Read() && reader.TokenType == JsonTokenType.String && Id(ref reader, kind) is { IsEmpty: false } id)
                        {
                            return (id, null);
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

        return (default, sticky);
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

    internal static AffinityKind CollectionOf(ReadOnlySpan<char> segment) => segment switch
    {
        "responses" => AffinityKind.Response,
        "conversations" => AffinityKind.Conversation,
        "files" => AffinityKind.File,
        "batches" => AffinityKind.Batch,
        "vector_stores" => AffinityKind.VectorStore,
        "containers" => AffinityKind.Container,
        "threads" => AffinityKind.Thread,
        "assistants" => AffinityKind.Assistant,
        _ => AffinityKind.None,
    };

    private static (AffinityId Id, string? StickyKey) ScanBody(HttpContent content, bool stickyOnly = false)
    {
        var length = content.Headers.ContentLength;
        if (length is not (> 0 and <= MaxScannedBody))
        {
            return default;
        }

        Stream stream;
        try
        {
            stream = content.ReadAsStream();
        }
        catch (Exception e) when (e is InvalidOperationException or NotSupportedException or IOException)
        {
            return default;
        }

        if (!stream.CanSeek)
        {
            return default;
        }

        var size = (int)length.Value;
        var buffer = ArrayPool<byte>.Shared.Rent(size);
        var position = stream.Position;
        try
        {
            stream.Position = 0;
            var read = 0;
            while (read < size && stream.Read(buffer, read, size - read) is > 0 and var n)
            {
                read += n;
            }

            var json = buffer.AsSpan(0, read);

            // A chat body is parsed only if a vectorized search finds a key property in it: most carry none.
            return stickyOnly && !MayHaveStickyKey(json) ? default : ScanBody(json);
        }
        finally
        {
            // The stream is the content's cached one: leave it as it was found.
            stream.Position = position;
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static AffinityId Id(ref Utf8JsonReader reader, AffinityKind kind)
    {
        if (reader.ValueSpan.Length > AffinityId.MaxLength || reader.ValueIsEscaped)
        {
            return default;
        }

        var value = reader.GetString();
        return value is not null && AffinityId.IsValid(value) ? new AffinityId(value, kind) : default;
    }

    private static AffinityKind PropertyKind(ref Utf8JsonReader reader)
    {
        if (reader.ValueIsEscaped || reader.ValueSpan.Length > 32)
        {
            return AffinityKind.None;
        }

        var name = reader.ValueSpan;
        return name switch
        {
            _ when name.SequenceEqual("previous_response_id"u8) => AffinityKind.Response,
            _ when name.SequenceEqual("conversation"u8) => AffinityKind.Conversation,
            _ when name.SequenceEqual("file_id"u8) || name.SequenceEqual("input_file_id"u8) => AffinityKind.File,
            _ when name.SequenceEqual("vector_store_ids"u8) => AffinityKind.VectorStore,
            _ when name.SequenceEqual("thread_id"u8) => AffinityKind.Thread,
            _ when name.SequenceEqual("assistant_id"u8) => AffinityKind.Assistant,
            _ when name.SequenceEqual("container"u8) => AffinityKind.Container,
            _ => AffinityKind.None,
        };
    }

    private static bool IsJson(HttpContent content)
        => content.Headers.ContentType?.MediaType is not { } mediaType || mediaType.Contains("json", StringComparison.OrdinalIgnoreCase);

    /// <summary>Ids carry '_' or '-' (<c>resp_</c>, <c>file-</c>, …), which tells them from sub-resources.</summary>
    private static bool LooksLikeId(ReadOnlySpan<char> segment)
        => segment.IndexOfAny('_', '-') > 0 &&
           !segment.SequenceEqual("input_items") &&
           !segment.SequenceEqual("input_tokens") &&
           AffinityId.IsValid(segment);

    /// <summary>The path of a URI without allocating: its original string past the authority, before query and fragment.</summary>
    private static ReadOnlySpan<char> PathOf(Uri? uri)
    {
        if (uri is null)
        {
            return [];
        }

        var text = uri.OriginalString.AsSpan();
        if (uri.IsAbsoluteUri)
        {
            var scheme = text.IndexOf("://", StringComparison.Ordinal);
            if (scheme >= 0)
            {
                text = text[(scheme + 3)..];
                var slash = text.IndexOf('/');
                text = slash < 0 ? [] : text[slash..];
            }
        }

        var end = text.IndexOfAny('?', '#');
        return end < 0 ? text : text[..end];
    }
}
