namespace Polly.PriorityRouting;

/// <summary>A body of which the first bytes were read ahead: those bytes first, then the rest of the stream.</summary>
internal sealed class ReadAheadStream(byte[] readAhead, int length, Stream rest) : ReadOnlyStream
{
    private int _position;

    public override int Read(Span<byte> buffer)
        => TryCopyReadAhead(buffer, out var copied) ? copied : rest.Read(buffer);

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        => TryCopyReadAhead(buffer.Span, out var copied) ? new(copied) : rest.ReadAsync(buffer, cancellationToken);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            rest.Dispose();
        }

        base.Dispose(disposing);
    }

    private bool TryCopyReadAhead(Span<byte> buffer, out int copied)
    {
        copied = Math.Min(length - _position, buffer.Length);
        if (copied <= 0 || buffer.IsEmpty)
        {
            return false;
        }

        readAhead.AsSpan(_position, copied).CopyTo(buffer);
        _position += copied;
        return true;
    }
}
