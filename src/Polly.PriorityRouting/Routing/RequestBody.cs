using System.Buffers;
using System.Net.Http.Headers;

namespace Polly.PriorityRouting;

/// <summary>
/// A request's body, read once for everything that routes on it — the model, the token estimate and affinity —
/// with one rule for what is JSON (<see cref="IsJson"/>) and one size cap (<see cref="MaxBytes"/>), and parsed in one
/// pass (<see cref="RequestBodyFacts"/>).
/// </summary>
/// <remarks>
/// <para>
/// Nothing is read until a consumer asks (<see cref="Facts"/>, <see cref="Bytes"/>): a request that no feature routes
/// on reads no body, and a body that is not JSON is read only for a custom extractor that asks for its bytes. The bytes
/// are copied from the content's replay buffer into a pooled array, parsed, and the array given back; only when
/// the bytes themselves are needed later (<c>keepBytes</c>: a model map rewrites the body on every attempt, a custom
/// <see cref="AffinityIdExtractor"/> reads it) is the copy an array of its own, kept with the facts.
/// </para>
/// <para>
/// It is kept on the request's options, tied to its content object: everything that asks during one execution (a custom
/// <see cref="PriorityRoutingStrategyOptions.RequestCost"/> calling <see cref="OpenAIRequestCost.Estimate(HttpRequestMessage)"/>
/// included) and an outer retry (the strategy run again with the same request) share one read; a request given new
/// content is read anew.
/// </para>
/// </remarks>
internal sealed class RequestBody
{
    /// <summary>The largest body read (64 MB, room for inline files and images); a larger one routes as if it had no body.</summary>
    public const int MaxBytes = 64 * 1024 * 1024;

    private static readonly HttpRequestOptionsKey<RequestBody> Key = new("Polly.PriorityRouting.RequestBody");

    private readonly HttpContent _content;
    private readonly bool _keepBytes;
    private readonly bool _isJson;
    private RequestBodyFacts _facts;
    private ReadOnlyMemory<byte> _bytes;
    private bool _read;

    private RequestBody(HttpContent content, bool keepBytes, bool isJson)
    {
        _content = content;
        _keepBytes = keepBytes;
        _isJson = isJson;
    }

    /// <summary>
    /// Gets what the body says, read and parsed on first use; <see cref="RequestBodyFacts.None"/> if it is not JSON (then
    /// not read) or cannot be read.
    /// </summary>
    public RequestBodyFacts Facts
    {
        get
        {
            if (!_read && _isJson)
            {
                _facts = Read();
            }

            return _facts;
        }
    }

    /// <summary>
    /// Gets the whole body as the caller sent it, read on first use, when <c>keepBytes</c> was asked for; otherwise (or
    /// when it could not be read) empty.
    /// </summary>
    public ReadOnlyMemory<byte> Bytes
    {
        get
        {
            if (!_read)
            {
                _facts = Read();
            }

            return _bytes;
        }
    }

    /// <summary>
    /// The body of a request: the one read before, if the request still has the same content, else a new one that reads
    /// when first asked; <see langword="null"/> when it has no body, or one that is not JSON and whose bytes are not asked
    /// for.
    /// </summary>
    /// <param name="request">The caller's request, its content already made replayable.</param>
    /// <param name="keepBytes">Whether <see cref="Bytes"/> will be asked for (of any body, JSON or not).</param>
    public static RequestBody? Of(HttpRequestMessage request, bool keepBytes = false)
    {
        if (request.Content is not { } content)
        {
            return null;
        }

        var isJson = IsJson(content.Headers.ContentType);
        if (!isJson && !keepBytes)
        {
            return null;
        }

        if (request.Options.TryGetValue(Key, out var read) && ReferenceEquals(read._content, content) && (!keepBytes || read._keepBytes))
        {
            return read;
        }

        var body = new RequestBody(content, keepBytes, isJson);
        request.Options.Set(Key, body);
        return body;
    }

    /// <summary>
    /// Whether <paramref name="span"/> is the body this request read with <c>keepBytes</c>: its facts can be used
    /// instead of parsing the span again.
    /// </summary>
    public static RequestBodyFacts? FactsOf(HttpRequestMessage request, ReadOnlySpan<byte> span)
        => request.Options.TryGetValue(Key, out var read) && read._read && read._isJson && !read._bytes.IsEmpty && read._bytes.Span == span
            ? read._facts
            : null;

    /// <summary>
    /// The one rule for a JSON body: <c>application/json</c>, <c>text/json</c>, a <c>+json</c> type, or no declared type
    /// (the parse then decides); never multipart forms, form posts, JSON Lines or binary uploads.
    /// </summary>
    public static bool IsJson(MediaTypeHeaderValue? contentType)
        => contentType?.MediaType is not { } mediaType ||
           string.Equals(mediaType, "application/json", StringComparison.OrdinalIgnoreCase) ||
           string.Equals(mediaType, "text/json", StringComparison.OrdinalIgnoreCase) ||
           mediaType.EndsWith("+json", StringComparison.OrdinalIgnoreCase);

    private RequestBodyFacts Read()
    {
        _read = true;
        var facts = RequestBodyFacts.None;
        try
        {
            // HttpContent hands every reader the same cached stream: never dispose it, and leave it where it was found.
            var stream = _content.Headers.ContentLength is 0 or > MaxBytes ? null : _content.ReadAsStream();
            if (stream is { CanSeek: true, Length: > 0 and <= MaxBytes })
            {
                facts = ReadAll(stream, (int)stream.Length);
            }
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or NotSupportedException or ObjectDisposedException)
        {
            // A body that cannot be read again routes as one without a body; sending it will fail as the caller's own.
        }

        return facts;
    }

    private RequestBodyFacts ReadAll(Stream stream, int length)
    {
        var buffer = _keepBytes ? new byte[length] : ArrayPool<byte>.Shared.Rent(length);
        var position = stream.Position;
        try
        {
            stream.Position = 0;
            var read = 0;
            while (read < length && stream.Read(buffer, read, length - read) is > 0 and var n)
            {
                read += n;
            }

            if (_keepBytes)
            {
                _bytes = buffer.AsMemory(0, read);
            }

            // The model's name is read when the bytes are kept: a model map needs both (its rewrite splices the bytes).
            return _isJson ? RequestBodyFacts.Scan(buffer.AsSpan(0, read), readModel: _keepBytes) : RequestBodyFacts.None;
        }
        finally
        {
            stream.Position = position;
            if (!_keepBytes)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }
}
