using System.Buffers;
using System.Text.Json;

namespace Polly.PriorityRouting;

/// <summary>The one pass over a JSON request body that finds every <see cref="RequestBodyFacts"/>.</summary>
internal readonly partial record struct RequestBodyFacts
{
    // Deep enough for any request schema (tool parameters, response formats); bounded, so a hostile body cannot recurse
    // without end.
    private const int MaxDepth = 256;

    // Room to unescape any property name looked for (the longest, max_completion_tokens, is 21 bytes; 6 per escape).
    private const int MaxEscapedName = 128;

    private const int PromptProperties = Top.Functions - Top.Messages + 1;
    private const int OutputCaps = Top.MaxOutputTokens - Top.MaxTokens + 1;

    /// <summary>The top-level properties read; a run of them is counted by index (prompt text, output caps).</summary>
    private enum Top : byte
    {
        Other,
        Model,
        N,
        MaxTokens,
        MaxCompletionTokens,
        MaxOutputTokens,
        Messages,
        Input,
        Prompt,
        Instructions,
        Tools,
        Functions,
        User,
        PromptCacheKey,
        Store,
        PreviousResponseId,
        Conversation,
        ThreadId,
        AssistantId,
        Metadata,
        FileId,
        InputFileId,
        VectorStoreIds,
        Container,
    }

    /// <summary>What the next value is, below the top level.</summary>
    private enum Nested : byte
    {
        None,
        File,
        Container,
        VectorStores,
        FirstVectorStore,
        ReasoningItem,
        Metadata,
    }

    /// <summary>Reads a UTF-8 JSON body (a byte order mark is skipped, and counted in the model's range).</summary>
    /// <param name="json">The body.</param>
    /// <param name="readModel">
    /// Whether to read the model's name too (a model map routes on it); otherwise only its range is found, and no string
    /// is allocated for it.
    /// </param>
    public static RequestBodyFacts Scan(ReadOnlySpan<byte> json, bool readModel = false)
    {
        var offset = json.StartsWith("\uFEFF"u8) ? 3 : 0;
        var reader = new Utf8JsonReader(json[offset..], new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip, MaxDepth = MaxDepth });
        var scratch = ArrayPool<byte>.Shared.Rent(MaxEscapedName);
        try
        {
            return Scan(ref reader, offset, readModel, scratch.AsSpan(0, MaxEscapedName));
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            // Not JSON, or a string that is not valid UTF-16 once unescaped: the backend will refuse the body.
            return None;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    private static RequestBodyFacts Scan(ref Utf8JsonReader reader, int offset, bool readModel, Span<byte> scratch)
    {
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            return None;
        }

        Span<long> promptBytes = stackalloc long[PromptProperties];
        Span<long> promptTokenIds = stackalloc long[PromptProperties];
        Span<long> outputCaps = stackalloc long[OutputCaps];
        long choices = 1;
        string? model = null;
        int modelStart = 0, modelEnd = 0;
        string? user = null, cacheKey = null;
        var unstored = false;
        AffinityId previous = default, conversation = default, thread = default, assistant = default;
        var nested = default(NestedId);
        long unused = 0;

        // Each top-level property is read whole before the next, and a repeated one replaces what the earlier said.
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var top = TopOf(ref reader, scratch);
            reader.Read();
            if (top != Top.Other && nested.Source == top)
            {
                nested = default;
            }

            switch (top)
            {
                case Top.Model:
                    (model, modelStart, modelEnd) = reader.TokenType == JsonTokenType.String
                        ? (readModel ? reader.GetString() : string.Empty, offset + (int)reader.TokenStartIndex, offset + (int)reader.BytesConsumed)
                        : (null, 0, 0);
                    break;
                case Top.N:
                    choices = reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var n) && n > 1 ? Math.Min(n, 128) : 1;
                    break;
                case >= Top.MaxTokens and <= Top.MaxOutputTokens:
                    outputCaps[top - Top.MaxTokens] = reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var cap) && cap > 0
                        ? Math.Min(cap, OpenAIRequestCost.MaxOutputCap)
                        : 0;
                    break;
                case >= Top.Messages and <= Top.Functions:
                    var prompt = top - Top.Messages;
                    promptBytes[prompt] = 0;
                    promptTokenIds[prompt] = 0;
                    Walk(ref reader, ref nested, top, Nested.None, counts: true, ref promptBytes[prompt], ref promptTokenIds[prompt], scratch);
                    break;
                case Top.User:
                    user = StickyKeyOf(ref reader);
                    break;
                case Top.PromptCacheKey:
                    cacheKey = StickyKeyOf(ref reader);
                    break;
                case Top.Store:
                    unstored = reader.TokenType == JsonTokenType.False;
                    break;
                case Top.PreviousResponseId:
                    previous = IdOf(ref reader, OpenAIAffinityKinds.Response);
                    break;
                case Top.Conversation:
                    conversation = reader.TokenType == JsonTokenType.StartObject ? ConversationIdOf(ref reader) : IdOf(ref reader, OpenAIAffinityKinds.Conversation);
                    break;
                case Top.ThreadId:
                    thread = IdOf(ref reader, OpenAIAffinityKinds.Thread);
                    break;
                case Top.AssistantId:
                    assistant = IdOf(ref reader, OpenAIAffinityKinds.Assistant);
                    break;
                case Top.Metadata:
                    // The caller's own key-value pairs: an id in them names nothing.
                    break;
                default:
                    Walk(ref reader, ref nested, top, NestedOf(top), counts: false, ref unused, ref unused, scratch);
                    break;
            }

            reader.Skip();
        }

        if (reader.TokenType != JsonTokenType.EndObject)
        {
            return None;
        }

        return new RequestBodyFacts
        {
            Model = model,
            ModelStart = modelStart,
            ModelEnd = modelEnd,
            EstimatedTokens = Estimate(promptBytes, promptTokenIds, outputCaps, choices),
            Referenced = !previous.IsEmpty ? previous : !conversation.IsEmpty ? conversation : !thread.IsEmpty ? thread : !assistant.IsEmpty ? assistant : nested.Id,
            StickyKey = cacheKey ?? user,
            Unstored = unstored,
        };
    }

    private static long Estimate(ReadOnlySpan<long> promptBytes, ReadOnlySpan<long> promptTokenIds, ReadOnlySpan<long> outputCaps, long choices)
    {
        long bytes = 0, tokenIds = 0, outputCap = 0;
        for (var i = 0; i < promptBytes.Length; i++)
        {
            bytes += promptBytes[i];
            tokenIds += promptTokenIds[i];
        }

        foreach (var cap in outputCaps)
        {
            outputCap = Math.Max(outputCap, cap);
        }

        return ((bytes + OpenAIRequestCost.BytesPerToken - 1) / OpenAIRequestCost.BytesPerToken) + tokenIds + (outputCap * choices);
    }

    /// <summary>
    /// Walks the value the reader is on, to its end: counts its text when it is prompt, and finds the first id it holds
    /// (file, vector store, container, reasoning item) outside <c>metadata</c>.
    /// </summary>
    private static void Walk(ref Utf8JsonReader reader, ref NestedId nested, Top source, Nested pending, bool counts, ref long bytes, ref long tokenIds, Span<byte> scratch)
    {
        var depth = reader.CurrentDepth;
        while (true)
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.PropertyName:
                    pending = NestedOf(ref reader, scratch);
                    if (pending == Nested.Metadata)
                    {
                        reader.Read();
                        reader.Skip();
                        pending = Nested.None;
                    }

                    break;
                case JsonTokenType.String:
                    if (counts)
                    {
                        bytes += reader.ValueIsEscaped ? UnescapedLength(ref reader) : reader.ValueSpan.Length;
                    }

                    if (pending != Nested.None && nested.Id.IsEmpty)
                    {
                        nested = new NestedId(IdOf(ref reader, pending), source);
                    }

                    pending = Nested.None;
                    break;
                case JsonTokenType.Number:
                    tokenIds += counts ? 1 : 0;
                    pending = Nested.None;
                    break;
                case JsonTokenType.StartArray:
                    pending = pending == Nested.VectorStores ? Nested.FirstVectorStore : Nested.None;
                    break;
                default:
                    pending = Nested.None;
                    break;
            }

            if ((reader.CurrentDepth == depth && reader.TokenType is not (JsonTokenType.StartObject or JsonTokenType.StartArray)) || !reader.Read())
            {
                return;
            }
        }
    }

    private static Top TopOf(ref Utf8JsonReader reader, Span<byte> scratch)
    {
        var name = NameOf(ref reader, scratch);
        return name.Length switch
        {
            1 when name.SequenceEqual("n"u8) => Top.N,
            4 when name.SequenceEqual("user"u8) => Top.User,
            5 when name.SequenceEqual("model"u8) => Top.Model,
            5 when name.SequenceEqual("input"u8) => Top.Input,
            5 when name.SequenceEqual("tools"u8) => Top.Tools,
            5 when name.SequenceEqual("store"u8) => Top.Store,
            6 when name.SequenceEqual("prompt"u8) => Top.Prompt,
            7 when name.SequenceEqual("file_id"u8) => Top.FileId,
            8 when name.SequenceEqual("messages"u8) => Top.Messages,
            8 when name.SequenceEqual("metadata"u8) => Top.Metadata,
            9 when name.SequenceEqual("functions"u8) => Top.Functions,
            9 when name.SequenceEqual("thread_id"u8) => Top.ThreadId,
            9 when name.SequenceEqual("container"u8) => Top.Container,
            10 when name.SequenceEqual("max_tokens"u8) => Top.MaxTokens,
            12 when name.SequenceEqual("conversation"u8) => Top.Conversation,
            12 when name.SequenceEqual("assistant_id"u8) => Top.AssistantId,
            12 when name.SequenceEqual("instructions"u8) => Top.Instructions,
            13 when name.SequenceEqual("input_file_id"u8) => Top.InputFileId,
            16 when name.SequenceEqual("prompt_cache_key"u8) => Top.PromptCacheKey,
            16 when name.SequenceEqual("vector_store_ids"u8) => Top.VectorStoreIds,
            17 when name.SequenceEqual("max_output_tokens"u8) => Top.MaxOutputTokens,
            20 when name.SequenceEqual("previous_response_id"u8) => Top.PreviousResponseId,
            21 when name.SequenceEqual("max_completion_tokens"u8) => Top.MaxCompletionTokens,
            _ => Top.Other,
        };
    }

    /// <summary>The ids that mean the same below the top level as at it.</summary>
    private static Nested NestedOf(Top top) => top switch
    {
        Top.FileId or Top.InputFileId => Nested.File,
        Top.Container => Nested.Container,
        Top.VectorStoreIds => Nested.VectorStores,
        _ => Nested.None,
    };

    private static Nested NestedOf(ref Utf8JsonReader reader, Span<byte> scratch)
    {
        var name = NameOf(ref reader, scratch);
        return name.Length switch
        {
            // A reasoning item sent back in "input": {"type":"reasoning","id":"rs_…","encrypted_content":…}.
            2 when name.SequenceEqual("id"u8) => Nested.ReasoningItem,
            7 when name.SequenceEqual("file_id"u8) => Nested.File,
            8 when name.SequenceEqual("metadata"u8) => Nested.Metadata,
            9 when name.SequenceEqual("container"u8) => Nested.Container,
            13 when name.SequenceEqual("input_file_id"u8) => Nested.File,
            16 when name.SequenceEqual("vector_store_ids"u8) => Nested.VectorStores,
            _ => Nested.None,
        };
    }

    /// <summary>A property name as it reads unescaped; a name too long to be one looked for reads as empty.</summary>
    private static ReadOnlySpan<byte> NameOf(ref Utf8JsonReader reader, Span<byte> scratch)
        => !reader.ValueIsEscaped ? reader.ValueSpan
            : reader.ValueSpan.Length <= scratch.Length ? scratch[..reader.CopyString(scratch)]
            : [];

    /// <summary><c>"conversation": {"id": "conv_…"}</c>; the reader ends on the object's end.</summary>
    private static AffinityId ConversationIdOf(ref Utf8JsonReader reader)
    {
        AffinityId id = default;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isId = reader.ValueTextEquals("id"u8);
            reader.Read();
            if (isId)
            {
                id = IdOf(ref reader, OpenAIAffinityKinds.Conversation);
            }

            reader.Skip();
        }

        return id;
    }

    private static AffinityId IdOf(ref Utf8JsonReader reader, Nested pending) => pending switch
    {
        Nested.File => IdOf(ref reader, OpenAIAffinityKinds.File),
        Nested.Container => IdOf(ref reader, OpenAIAffinityKinds.Container),
        Nested.FirstVectorStore or Nested.VectorStores => IdOf(ref reader, OpenAIAffinityKinds.VectorStore),
        Nested.ReasoningItem when reader.ValueIsEscaped || reader.ValueSpan.StartsWith("rs_"u8) => IdOf(ref reader, OpenAIAffinityKinds.ReasoningItem),
        _ => default,
    };

    private static AffinityId IdOf(ref Utf8JsonReader reader, AffinityIdKind kind)
    {
        // Longer than any id even fully escaped: not read.
        if (reader.TokenType != JsonTokenType.String || reader.ValueSpan.Length > AffinityId.MaxLength * 6)
        {
            return default;
        }

        var value = reader.GetString()!;
        if (kind == OpenAIAffinityKinds.ReasoningItem && !value.StartsWith("rs_", StringComparison.Ordinal))
        {
            return default;
        }

        return AffinityId.IsValid(value) ? new AffinityId(value, kind) : default;
    }

    private static string? StickyKeyOf(ref Utf8JsonReader reader)
        => reader.TokenType == JsonTokenType.String && reader.ValueSpan.Length <= AffinityRequestParser.MaxStickyKeyLength * 6 &&
           reader.GetString() is { Length: > 0 and <= AffinityRequestParser.MaxStickyKeyLength } key
            ? key
            : null;

    /// <summary>
    /// The UTF-8 length of an escaped string: serializers escape non-ASCII text (<c>\u0436</c>, 6 bytes for 2), and
    /// the text, not its escaping, is what the service tokenizes.
    /// </summary>
    private static long UnescapedLength(ref Utf8JsonReader reader)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(reader.ValueSpan.Length);
        try
        {
            return reader.CopyString(buffer);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>An id found below the top level, and the top-level property it was found under.</summary>
    private readonly record struct NestedId(AffinityId Id, Top Source);
}
