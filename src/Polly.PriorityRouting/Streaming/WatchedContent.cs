using System.Net;

namespace Polly.PriorityRouting;

/// <summary>
/// The response content handed to the caller when its body is watched: the backend's content headers, and a body read
/// through <see cref="WatchedStream"/> — from its first byte, still streamed, never buffered here.
/// </summary>
internal sealed class WatchedContent : HttpContent
{
    private readonly HttpContent _inner;
    private readonly WatchedStream _stream;

    public WatchedContent(HttpContent inner, WatchedStream stream)
    {
        _inner = inner;
        _stream = stream;

        // A content's headers belong to it and cannot be shared: they are copied as the transport stored them, without
        // parsing.
        foreach (var header in inner.Headers.NonValidated)
        {
            Headers.AddAsStored(header.Key, header.Value);
        }
    }

    /// <summary>
    /// Returns whether a body is watched already: itself, or under a wrapper put on after the watcher (affinity's
    /// sniffing). A transport that returns one response object again must not get one wrapper more per request.
    /// </summary>
    public static bool IsWatched(HttpContent? content)
    {
        while (content is not WatchedContent)
        {
            if (content is not IWrappingContent wrapper)
            {
                return false;
            }

            content = wrapper.Inner;
        }

        return true;
    }

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        => SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        var body = await CreateContentReadStreamAsync(cancellationToken).ConfigureAwait(false);
        await body.CopyToAsync(stream, cancellationToken).ConfigureAwait(false);
    }

    protected override void SerializeToStream(Stream stream, TransportContext? context, CancellationToken cancellationToken)
        => GetStream(cancellationToken).CopyTo(stream);

    protected override Task<Stream> CreateContentReadStreamAsync() => CreateContentReadStreamAsync(CancellationToken.None);

    protected override Task<Stream> CreateContentReadStreamAsync(CancellationToken cancellationToken)
    {
        // HttpContent keeps the task it got here: called once per content, and synchronous for the transports' streams.
        if (!_stream.HasStream)
        {
            var opening = _inner.ReadAsStreamAsync(cancellationToken);
            if (!opening.IsCompletedSuccessfully)
            {
                return AttachAsync(opening);
            }

            _stream.Attach(opening.Result);
        }

        return Task.FromResult<Stream>(_stream);
    }

    protected override Stream CreateContentReadStream(CancellationToken cancellationToken) => GetStream(cancellationToken);

    protected override bool TryComputeLength(out long length)
    {
        // A Content-Length the backend sent was copied with the headers; otherwise the length is unknown.
        length = 0;
        return false;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _stream.Dispose();
            _inner.Dispose();
        }

        base.Dispose(disposing);
    }

    private async Task<Stream> AttachAsync(Task<Stream> opening)
    {
        _stream.Attach(await opening.ConfigureAwait(false));
        return _stream;
    }

    private WatchedStream GetStream(CancellationToken cancellationToken)
    {
        if (!_stream.HasStream)
        {
            _stream.Attach(_inner.ReadAsStream(cancellationToken));
        }

        return _stream;
    }
}
