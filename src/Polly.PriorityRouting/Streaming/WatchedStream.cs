using System.Buffers;

namespace Polly.PriorityRouting;

/// <summary>
/// The caller's view of a watched response body: it yields the bytes read while waiting for the first byte, then the
/// rest of the backend's stream as it comes, and reports how the body ended to its backend's health exactly once.
/// </summary>
/// <remarks>
/// <para>
/// Nothing new is ever thrown into the caller's read loop: a failed read rethrows the transport's own exception
/// (recorded as <see cref="BodyEnd.Aborted"/> on the way), and a stall (a read waiting longer than the stall timeout) is
/// only recorded — the read goes on.
/// </para>
/// <para>
/// Its own handle on the backend: the attempt's lease is gone when the body ends, so the stream keeps a copy that holds
/// no probe slot but remembers the ejection episode, and a verdict from an older episode is ignored. If the caller
/// never reads nor disposes, nothing is recorded and nothing stays referenced: no timer runs unless a read waits.
/// </para>
/// <para>
/// A caller may dispose the body on one thread while a read is under way on another (a cancelled stream): the stall
/// timer is then never changed once disposed, nor created after the dispose (a lock, only with a stall timeout).
/// </para>
/// </remarks>
internal sealed class WatchedStream : ReadOnlyStream
{
    private readonly ResponseBodyWatcher _watcher;
    private readonly BackendLease _lease;
    private readonly long _attemptStarted;
    private Stream? _inner;
    private byte[]? _prefetch;
    private int _prefetchOffset;
    private int _prefetchCount;
    private volatile bool _sawByte;
    private int _ended;
    private int _readWaiting;

    // The stall timer is armed and disarmed by the reading thread and disposed by whoever disposes the body, possibly at
    // the same time: every use of it, and the decision to dispose, happen under this lock (only with a stall timeout).
    private readonly object? _timerLock;
    private ITimer? _stallTimer;
    private volatile bool _disposed;

    /// <param name="watcher">Receives the verdict.</param>
    /// <param name="lease">The attempt's lease (its probe slot is not used).</param>
    /// <param name="attemptStarted">The attempt's start, as a timestamp of the watcher's clock.</param>
    /// <param name="inner">The backend's stream, or <see langword="null"/> until the caller reads (see <see cref="Attach"/>).</param>
    /// <param name="prefetch">A pooled buffer holding the bytes read ahead, or <see langword="null"/>.</param>
    /// <param name="prefetchCount">How many bytes of <paramref name="prefetch"/> were read; 0 when the body was empty.</param>
    public WatchedStream(ResponseBodyWatcher watcher, BackendLease lease, long attemptStarted, Stream? inner = null, byte[]? prefetch = null, int prefetchCount = 0)
    {
        _watcher = watcher;
        // The body holds the attempt's in-flight slot from now on, and gives it back when it ends (End, MarkEnded).
        _lease = new BackendLease(lease.Backend, lease.Health, 0, lease.Episode, lease.Slot);
        lease.Slot?.HandToBody();
        _attemptStarted = attemptStarted;
        _inner = inner;
        _prefetch = prefetch;
        _prefetchCount = prefetchCount;
        _sawByte = prefetchCount > 0;
        _timerLock = watcher.StallTimeout is null ? null : new object();
    }

    public bool HasStream => _inner is not null;

    private bool IsReadWaiting => Volatile.Read(ref _readWaiting) != 0;

    /// <summary>Sets the backend's stream when the caller first reads (bodies that were not read ahead).</summary>
    public void Attach(Stream inner) => _inner ??= inner;

    /// <summary>Records that the body was known to be over when it was read ahead: nothing more to report.</summary>
    public void MarkEnded()
    {
        Volatile.Write(ref _ended, 1);
        _lease.Slot?.Dispose();
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (TryReadPrefetched(buffer.Span, out var copied))
        {
            return new ValueTask<int>(copied);
        }

        ValueTask<int> read;
        try
        {
            read = _inner!.ReadAsync(buffer, cancellationToken);
        }
        catch (Exception e)
        {
            OnReadFailed(e, cancellationToken);
            throw;
        }

        if (read.IsCompletedSuccessfully)
        {
            var count = read.Result;
            OnRead(count, buffer.Length);
            return new ValueTask<int>(count);
        }

        return AwaitReadAsync(read, buffer.Length, cancellationToken);
    }

    public override int Read(Span<byte> buffer)
    {
        if (TryReadPrefetched(buffer, out var copied))
        {
            return copied;
        }

        StartWaiting();
        int count;
        try
        {
            count = _inner!.Read(buffer);
        }
        catch (Exception e)
        {
            StopWaiting();
            OnReadFailed(e, CancellationToken.None);
            throw;
        }

        StopWaiting();
        OnRead(count, buffer.Length);
        return count;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing && !_disposed)
        {
            _disposed = true;

            // The caller stopped reading. After bytes arrived and with no read waiting, the backend did its part (SDKs
            // stop at "[DONE]" without reading to the end); before any byte, or with a read waiting, nothing is known.
            End(_sawByte && !IsReadWaiting ? BodyEnd.Released : BodyEnd.Abandoned, null);
            DisposeStallTimer();
            ReturnPrefetch();
            _inner?.Dispose();
        }

        base.Dispose(disposing);
    }

    private static void OnStallTimer(object? state)
    {
        var stream = (WatchedStream)state!;
        if (stream.IsReadWaiting)
        {
            stream.End(BodyEnd.Stalled, null);
        }
    }

    private async ValueTask<int> AwaitReadAsync(ValueTask<int> read, int requested, CancellationToken cancellationToken)
    {
        StartWaiting();
        int count;
        try
        {
            count = await read.ConfigureAwait(false);
        }
        catch (Exception e)
        {
            StopWaiting();
            OnReadFailed(e, cancellationToken);
            throw;
        }

        StopWaiting();
        OnRead(count, requested);
        return count;
    }

    private bool TryReadPrefetched(Span<byte> destination, out int copied)
    {
        copied = 0;
        var prefetch = _prefetch;
        if (prefetch is null || _prefetchCount == 0)
        {
            return false;
        }

        copied = Math.Min(destination.Length, _prefetchCount);
        prefetch.AsSpan(_prefetchOffset, copied).CopyTo(destination);
        _prefetchOffset += copied;
        _prefetchCount -= copied;
        if (_prefetchCount == 0)
        {
            ReturnPrefetch();
        }

        return true;
    }

    private void ReturnPrefetch()
    {
        if (Interlocked.Exchange(ref _prefetch, null) is { } buffer)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private void OnRead(int count, int requested)
    {
        if (count > 0)
        {
            if (!_sawByte)
            {
                _sawByte = true;
                _watcher.FirstByte(_lease.Backend, _attemptStarted);
            }
        }
        else if (requested > 0)
        {
            End(BodyEnd.Completed, null);
        }
    }

    private void OnReadFailed(Exception exception, CancellationToken cancellationToken)
    {
        var end = exception is OperationCanceledException && cancellationToken.IsCancellationRequested
            ? BodyEnd.Canceled
            : _disposed ? BodyEnd.Abandoned : BodyEnd.Aborted;
        End(end, exception);
    }

    private void StartWaiting()
    {
        Volatile.Write(ref _readWaiting, 1);
        if (_timerLock is null || Volatile.Read(ref _ended) != 0)
        {
            return;
        }

        var timeout = _watcher.StallTimeout!.Value;
        lock (_timerLock)
        {
            if (_disposed)
            {
                // Disposed since the read began: a timer created now would never be disposed.
                return;
            }

            if (_stallTimer is { } timer)
            {
                timer.Change(timeout, System.Threading.Timeout.InfiniteTimeSpan);
            }
            else
            {
                _stallTimer = _watcher.TimeProvider.CreateTimer(OnStallTimer, this, timeout, System.Threading.Timeout.InfiniteTimeSpan);
            }
        }
    }

    private void StopWaiting()
    {
        Volatile.Write(ref _readWaiting, 0);
        if (_timerLock is null)
        {
            return;
        }

        lock (_timerLock)
        {
            // Null once disposed: a disposed timer is never changed.
            _stallTimer?.Change(System.Threading.Timeout.InfiniteTimeSpan, System.Threading.Timeout.InfiniteTimeSpan);
        }
    }

    private void DisposeStallTimer()
    {
        if (_timerLock is null)
        {
            return;
        }

        ITimer? timer;
        lock (_timerLock)
        {
            timer = _stallTimer;
            _stallTimer = null;
        }

        timer?.Dispose();
    }

    private void End(BodyEnd end, Exception? exception)
    {
        if (Interlocked.Exchange(ref _ended, 1) != 0)
        {
            return;
        }

        try
        {
            _watcher.BodyEnded(_lease, end, exception);
        }
#pragma warning disable CA1031 // Recording health must never throw into the caller's read loop (a failing logger is the only source left).
        catch (Exception)
#pragma warning restore CA1031
        {
        }
        finally
        {
            _lease.Slot?.Dispose();
        }
    }
}
