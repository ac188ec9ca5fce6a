using System.Text;
using System.Threading.Channels;

namespace Polly.PriorityRouting.Tests.Support;

/// <summary>
/// A response body the test writes chunk by chunk: reads wait for the next chunk, an exception, or the end, and
/// honour their cancellation token. Tests await <see cref="WhenReading"/> before moving the fake clock.
/// </summary>
internal sealed class ScriptedBodyStream : Stream
{
    private static readonly object EndMarker = new();

    private readonly Channel<object> _script = Channel.CreateUnbounded<object>();
    private TaskCompletionSource _reading = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private byte[]? _leftover;
    private int _leftoverOffset;
    private bool _ended;
    private int _reads;

    public int Reads => Volatile.Read(ref _reads);

    public bool IsDisposed { get; private set; }

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    /// <summary>Completes when a read is waiting for the script.</summary>
    public Task WhenReading() => Volatile.Read(ref _reading).Task;

    public ScriptedBodyStream Send(string text)
    {
        _script.Writer.TryWrite(Encoding.UTF8.GetBytes(text));
        return this;
    }

    public ScriptedBodyStream Fail(Exception exception)
    {
        _script.Writer.TryWrite(exception);
        return this;
    }

    public ScriptedBodyStream End()
    {
        _script.Writer.TryWrite(EndMarker);
        return this;
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        Interlocked.Increment(ref _reads);
        if (_leftover is null)
        {
            if (_ended)
            {
                return 0;
            }

            if (!_script.Reader.TryRead(out var item))
            {
                _reading.TrySetResult();
                item = await _script.Reader.ReadAsync(cancellationToken);
                _reading = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }

            switch (item)
            {
                case Exception exception:
                    throw exception;
                case byte[] chunk:
                    _leftover = chunk;
                    _leftoverOffset = 0;
                    break;
                default:
                    _ended = true;
                    return 0;
            }
        }

        var count = Math.Min(buffer.Length, _leftover.Length - _leftoverOffset);
        _leftover.AsMemory(_leftoverOffset, count).CopyTo(buffer);
        _leftoverOffset += count;
        if (_leftoverOffset == _leftover.Length)
        {
            _leftover = null;
        }

        return count;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count, CancellationToken.None).GetAwaiter().GetResult();

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        IsDisposed = true;
        base.Dispose(disposing);
    }
}
