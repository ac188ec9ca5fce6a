using System.Net;

namespace Polly.PriorityRouting;

/// <summary>
/// One attempt's request body: the caller's buffered body with the value of its top-level <c>"model"</c> replaced by
/// the backend's own name. It writes three slices of the shared buffer — before the value, the new value, after it —
/// so an attempt copies nothing and every other byte goes out as the caller wrote it.
/// </summary>
/// <remarks>
/// The caller's content is never modified; its headers (Content-Type and any other) are copied, except Content-Length,
/// which this content computes.
/// </remarks>
internal sealed class ModelRewrittenContent : HttpContent
{
    private readonly ReadOnlyMemory<byte> _before;
    private readonly ReadOnlyMemory<byte> _value;
    private readonly ReadOnlyMemory<byte> _after;

    public ModelRewrittenContent(HttpContent original, ReadOnlyMemory<byte> body, int valueStart, int valueEnd, ReadOnlyMemory<byte> value)
    {
        _before = body[..valueStart];
        _value = value;
        _after = body[valueEnd..];
        foreach (var header in original.Headers.NonValidated)
        {
            if (!string.Equals(header.Key, "Content-Length", StringComparison.OrdinalIgnoreCase))
            {
                Headers.AddAsStored(header.Key, header.Value);
            }
        }
    }

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        => SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        await stream.WriteAsync(_before, cancellationToken).ConfigureAwait(false);
        await stream.WriteAsync(_value, cancellationToken).ConfigureAwait(false);
        await stream.WriteAsync(_after, cancellationToken).ConfigureAwait(false);
    }

    protected override void SerializeToStream(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        stream.Write(_before.Span);
        stream.Write(_value.Span);
        stream.Write(_after.Span);
    }

    protected override bool TryComputeLength(out long length)
    {
        length = _before.Length + _value.Length + _after.Length;
        return true;
    }
}
