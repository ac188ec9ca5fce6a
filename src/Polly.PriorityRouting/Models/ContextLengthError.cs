using System.Text.Json;

namespace Polly.PriorityRouting;

/// <summary>
/// Reads the start of a <c>400</c> answer's body to tell whether it is OpenAI's (and Azure OpenAI's) "the prompt does
/// not fit" error — <c>{"error":{…,"code":"context_length_exceeded"}}</c> — and puts what it read back for the caller
/// when it is not.
/// </summary>
internal static class ContextLengthError
{
    /// <summary>An error body is small: a body longer than this is not that error, and is not read further.</summary>
    public const int MaxReadBytes = 16 * 1024;

    /// <summary>An error body comes at once: a body slower than this is not that error, and goes back as it comes.</summary>
    public static readonly TimeSpan MaxReadTime = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Reads at most <see cref="MaxReadBytes"/> (and one more byte, to know whether the body ends there), for at most
    /// <see cref="MaxReadTime"/>. The caller's cancellation is thrown; a body that is too long or too slow is not that error.
    /// </summary>
    public static async ValueTask<ReadAhead> ReadAsync(HttpContent content, TimeProvider timeProvider, CancellationToken cancellationToken)
    {
        if (content.Headers.ContentLength is > MaxReadBytes)
        {
            return new ReadAhead(null, [], 0, Complete: false, IsContextLengthExceeded: false);
        }

        var stream = await content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        var buffer = new byte[MaxReadBytes + 1];
        var length = 0;
        using var timeout = new CancellationTokenSource(MaxReadTime, timeProvider);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        try
        {
            int read;
            while (length < buffer.Length && (read = await stream.ReadAsync(buffer.AsMemory(length), linked.Token).ConfigureAwait(false)) > 0)
            {
                length += read;
            }
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            // Too slow for an error body: the caller reads what came and the rest as it comes.
            return new ReadAhead(stream, buffer, length, Complete: false, IsContextLengthExceeded: false);
        }

        var complete = length <= MaxReadBytes;
        return new ReadAhead(stream, buffer, length, complete, complete && IsContextLengthExceeded(buffer.AsSpan(0, length)));
    }

    /// <summary>
    /// Returns the content the caller reads: the bytes read and the rest of the body, with the original content headers.
    /// </summary>
    public static HttpContent Restore(HttpContent original, ReadAhead read)
    {
        if (read.Stream is null)
        {
            // Nothing was read.
            return original;
        }

        HttpContent restored = read.Complete
            ? new ByteArrayContent(read.Buffer, 0, read.Length)
            : new StreamContent(new ReadAheadStream(read.Buffer, read.Length, read.Stream));
        foreach (var header in original.Headers.NonValidated)
        {
            restored.Headers.TryAddWithoutValidation(header.Key, header.Value);
        }

        if (read.Complete)
        {
            // All of it is in memory now: the connection goes back to the pool.
            original.Dispose();
        }

        return restored;
    }

    /// <summary>
    /// Returns whether a JSON error body has <c>"code":"context_length_exceeded"</c> at its top level or in its top-level
    /// <c>"error"</c> object. Anything else, invalid JSON included, is not that error.
    /// </summary>
    internal static bool IsContextLengthExceeded(ReadOnlySpan<byte> body)
    {
        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 64 });
        try
        {
            while (reader.Read())
            {
                if (reader.TokenType == JsonTokenType.PropertyName && reader.CurrentDepth <= 2 && reader.ValueTextEquals("code"u8) &&
                    reader.Read() && reader.TokenType == JsonTokenType.String && reader.ValueTextEquals("context_length_exceeded"u8))
                {
                    return true;
                }
            }
        }
        catch (JsonException)
        {
            // Not JSON: not that error.
        }

        return false;
    }

    /// <summary>What was read of a body: the stream, the bytes taken from it, and whether that was all of it.</summary>
    internal readonly record struct ReadAhead(Stream? Stream, byte[] Buffer, int Length, bool Complete, bool IsContextLengthExceeded);
}
