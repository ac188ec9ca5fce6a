namespace Polly.PriorityRouting;

/// <summary>A body of which the first bytes were read ahead: those bytes first, then the rest of the stream.</summary>
internal sealed class ReadAheadStream(byte[] readAhead, int length, Stream rest) : Stream
{
    private int _position;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
        => TryCopyReadAhead(buffer, out var copied) ? copied : rest.Read(buffer);

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        => TryCopyReadAhead(buffer.Span, out var copied) ? new(copied) : rest.ReadAsync(buffer, cancellationToken);

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

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
