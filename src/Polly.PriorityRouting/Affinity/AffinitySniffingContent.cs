using System.Net;

namespace Polly.PriorityRouting;

/// <summary>
/// The content of an answer that creates an id: the backend's content, unbuffered and untouched, read through an
/// <see cref="AffinitySniffingStream"/>; same headers.
/// </summary>
internal sealed class AffinitySniffingContent : HttpContent, IWrappingContent
{
    private readonly HttpContent _inner;
    private readonly Func<string, CancellationToken, ValueTask> _onId;
    private readonly bool _eventStream;
    private readonly AffinityAnswerIds _ids;

    public AffinitySniffingContent(HttpContent inner, Func<string, CancellationToken, ValueTask> onId)
        : this(inner, AffinityAnswerIds.Id, onId)
    {
    }

    public AffinitySniffingContent(HttpContent inner, AffinityAnswerIds ids, Func<string, CancellationToken, ValueTask> onId)
    {
        _inner = inner;
        _ids = ids;
        _onId = onId;
        _eventStream = string.Equals(inner.Headers.ContentType?.MediaType, "text/event-stream", StringComparison.OrdinalIgnoreCase);
        foreach (var header in inner.Headers.NonValidated)
        {
            Headers.AddAsStored(header.Key, header.Value);
        }
    }

    /// <inheritdoc/>
    public HttpContent Inner => _inner;

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        => await SerializeToStreamAsync(stream, context, CancellationToken.None).ConfigureAwait(false);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        var source = await CreateContentReadStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (source.ConfigureAwait(false))
        {
            await source.CopyToAsync(stream, cancellationToken).ConfigureAwait(false);
        }
    }

    protected override void SerializeToStream(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        using var source = CreateContentReadStream(cancellationToken);
        source.CopyTo(stream);
    }

    protected override Task<Stream> CreateContentReadStreamAsync() => CreateContentReadStreamAsync(CancellationToken.None);

    protected override async Task<Stream> CreateContentReadStreamAsync(CancellationToken cancellationToken)
        => new AffinitySniffingStream(await _inner.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false), _eventStream, _ids, _onId);

    protected override Stream CreateContentReadStream(CancellationToken cancellationToken)
        => new AffinitySniffingStream(_inner.ReadAsStream(cancellationToken), _eventStream, _ids, _onId);

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _inner.Dispose();
        }

        base.Dispose(disposing);
    }
}
