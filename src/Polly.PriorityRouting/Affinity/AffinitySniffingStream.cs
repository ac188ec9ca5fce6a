using System.Buffers;

namespace Polly.PriorityRouting;

/// <summary>
/// Passes an answer's body through untouched while reading the created id from its first bytes (at most
/// <see cref="LookAhead"/>): the bytes are copied into one pooled buffer as they flow, never held back. The read that
/// completes the id waits for the pin to be stored before it hands those bytes on, so a caller can never hold the id
/// before every replica can route it.
/// </summary>
internal sealed class AffinitySniffingStream : ReadOnlyStream
{
    /// <summary>The most bytes looked at: OpenAI answers and <c>response.created</c> events start with the id.</summary>
    public const int LookAhead = 4096;

    private readonly Stream _inner;
    private readonly bool _eventStream;
    private readonly Func<string, CancellationToken, ValueTask> _onId;
    private byte[]? _seen;
    private int _seenCount;

    public AffinitySniffingStream(Stream inner, bool eventStream, Func<string, CancellationToken, ValueTask> onId)
    {
        _inner = inner;
        _eventStream = eventStream;
        _onId = onId;
        _seen = ArrayPool<byte>.Shared.Rent(LookAhead);
    }

    public override int Read(Span<byte> buffer)
    {
        var read = _inner.Read(buffer);
        if (_seen is not null && Look(buffer[..read]) is { } id)
        {
            // A synchronous reader waits synchronously, as it asked to.
            _onId(id, CancellationToken.None).AsTask().GetAwaiter().GetResult();
        }

        return read;
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        => _seen is null ? _inner.ReadAsync(buffer, cancellationToken) : SniffAsync(buffer, cancellationToken);

    private async ValueTask<int> SniffAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        var read = await _inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        if (_seen is not null && Look(buffer.Span[..read]) is { } id)
        {
            await _onId(id, cancellationToken).ConfigureAwait(false);
        }

        return read;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            Release();
            _inner.Dispose();
        }

        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        Release();
        await _inner.DisposeAsync().ConfigureAwait(false);
        await base.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Adds the bytes just read to the look-ahead and tries to read the id; at the end gives the buffer back.</summary>
    private string? Look(ReadOnlySpan<byte> read)
    {
        var seen = _seen!;
        var take = Math.Min(read.Length, LookAhead - _seenCount);
        read[..take].CopyTo(seen.AsSpan(_seenCount));
        _seenCount += take;
        var complete = read.Length == 0 || _seenCount == LookAhead;
        var result = AffinityIdReader.TryRead(seen.AsSpan(0, _seenCount), _eventStream, complete, out var id);
        if (result != AffinityIdReader.Result.NeedMore)
        {
            Release();
        }

        return id;
    }

    private void Release()
    {
        if (Interlocked.Exchange(ref _seen, null) is { } seen)
        {
            ArrayPool<byte>.Shared.Return(seen);
        }
    }
}
