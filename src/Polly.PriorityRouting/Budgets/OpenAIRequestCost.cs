using System.Buffers;
using System.Text.Json;

namespace Polly.PriorityRouting;

/// <summary>
/// Estimates what a request costs against a token budget, as Azure OpenAI admits it: the prompt's tokens plus the
/// requested output cap (<c>max_tokens</c>, <c>max_completion_tokens</c> or <c>max_output_tokens</c>, times <c>n</c>).
/// Reads the OpenAI / Azure OpenAI chat completions, responses, completions and embeddings request shapes.
/// </summary>
/// <remarks>
/// The prompt is counted from the UTF-8 bytes of the strings under <c>messages</c>, <c>input</c>, <c>prompt</c>,
/// <c>instructions</c>, <c>tools</c> and <c>functions</c>, at <see cref="BytesPerToken"/> bytes per token (a token id
/// given as a number counts one token). Anything that is not such a JSON body costs 0, which the token budget admits as
/// if no budget were known (a reported request budget still counts it as one request).
/// </remarks>
public static class OpenAIRequestCost
{
    /// <summary>The UTF-8 bytes of prompt text counted as one token by the estimate.</summary>
    public const int BytesPerToken = 4;

    /// <summary>
    /// Output caps above this (16,777,216 tokens, far beyond any model's output) count as this: the caller controls the
    /// number, and cap × <c>n</c> must never wrap around to a negative cost, which spending would add to a budget.
    /// </summary>
    internal const long MaxOutputCap = 1L << 24;

    /// <summary>The largest body read for an estimate; a larger body costs 0 (it is not read twice).</summary>
    public const int MaxBodyBytes = 4 * 1024 * 1024;

    /// <summary>
    /// Estimates the tokens of a request whose body is already buffered (the strategy buffers it before the first
    /// attempt).
    /// </summary>
    /// <param name="request">The request.</param>
    /// <returns>The estimated tokens; 0 when the request has no JSON body of a known shape.</returns>
    public static long Estimate(HttpRequestMessage request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Content is not { } content ||
            (content.Headers.ContentType?.MediaType is { } mediaType && !mediaType.EndsWith("json", StringComparison.OrdinalIgnoreCase)) ||
            content.Headers.ContentLength is not (> 0 and <= MaxBodyBytes) and not null)
        {
            return 0;
        }

        try
        {
            // HttpContent hands every reader the same cached stream: never dispose it, and leave it where it was found,
            // so that the next reader (affinity, the model map) sees the whole body too.
            var stream = content.ReadAsStream();
            if (stream is MemoryStream memory && memory.TryGetBuffer(out var buffer))
            {
                return Estimate(buffer.AsSpan((int)memory.Position));
            }

            if (!stream.CanSeek)
            {
                return 0;
            }

            var start = stream.Position;
            var length = stream.Length - start;
            if (length is <= 0 or > MaxBodyBytes)
            {
                return 0;
            }

            var rented = ArrayPool<byte>.Shared.Rent((int)length);
            try
            {
                var read = 0;
                int chunk;
                while (read < length && (chunk = stream.Read(rented, read, (int)length - read)) > 0)
                {
                    read += chunk;
                }

                return Estimate(rented.AsSpan(0, read));
            }
            finally
            {
                stream.Position = start;
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or NotSupportedException or ObjectDisposedException)
        {
            return 0;
        }
    }

    /// <summary>Estimates the tokens of a JSON request body.</summary>
    /// <param name="json">The UTF-8 JSON body.</param>
    /// <returns>The estimated tokens; 0 when the body is not a JSON object.</returns>
    public static long Estimate(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip, MaxDepth = 256 });
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return 0;
            }

            long promptBytes = 0;
            long promptTokenIds = 0;
            long outputCap = 0;
            long choices = 1;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("max_tokens"u8) || reader.ValueTextEquals("max_completion_tokens"u8) || reader.ValueTextEquals("max_output_tokens"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var cap) && cap > outputCap)
                    {
                        outputCap = Math.Min(cap, MaxOutputCap);
                    }
                }
                else if (reader.ValueTextEquals("n"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var n) && n > 1)
                    {
                        choices = Math.Min(n, 128);
                    }
                }
                else if (reader.ValueTextEquals("messages"u8) || reader.ValueTextEquals("input"u8) || reader.ValueTextEquals("prompt"u8) ||
                         reader.ValueTextEquals("instructions"u8) || reader.ValueTextEquals("tools"u8) || reader.ValueTextEquals("functions"u8))
                {
                    reader.Read();
                    CountText(ref reader, ref promptBytes, ref promptTokenIds);
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            return ((promptBytes + BytesPerToken - 1) / BytesPerToken) + promptTokenIds + (outputCap * choices);
        }
        catch (JsonException)
        {
            return 0;
        }
    }

    /// <summary>
    /// The UTF-8 length of an escaped string: serializers escape non-ASCII text (<c>\u0436</c>, 6 bytes for 2), and
    /// the text, not its escaping, is what the service tokenizes.
    /// </summary>
    private static long UnescapedLength(ref Utf8JsonReader reader)
    {
        var escaped = reader.HasValueSequence ? (int)reader.ValueSequence.Length : reader.ValueSpan.Length;
        var buffer = ArrayPool<byte>.Shared.Rent(escaped);
        try
        {
            return reader.CopyString(buffer);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Counts the string bytes and number tokens of the value the reader is on, nested values included.</summary>
    private static void CountText(ref Utf8JsonReader reader, ref long bytes, ref long tokenIds)
    {
        var depth = reader.CurrentDepth;
        do
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.String:
                    bytes += reader.ValueIsEscaped ? UnescapedLength(ref reader) : reader.HasValueSequence ? reader.ValueSequence.Length : reader.ValueSpan.Length;
                    break;
                case JsonTokenType.Number:
                    tokenIds++;
                    break;
                case JsonTokenType.EndObject or JsonTokenType.EndArray when reader.CurrentDepth == depth:
                    return;
                default:
                    break;
            }

            if (reader.TokenType is not (JsonTokenType.StartObject or JsonTokenType.StartArray))
            {
                if (reader.CurrentDepth == depth)
                {
                    return;
                }
            }
        }
        while (reader.Read());
    }
}
