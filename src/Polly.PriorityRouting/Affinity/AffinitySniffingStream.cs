using System.Buffers;

namespace Polly.PriorityRouting;

/// <summary>
/// Passes an answer's body through untouched while reading the created ids from it: the top-level ones from its first
/// bytes (at most <see cref="LookAhead"/>, copied into one pooled buffer as they flow, never held back), and — for a
/// Responses answer — reasoning item ids from all of it, in constant memory. The read that completes an id waits for its
/// pin to be stored before it hands those bytes on, so a caller can never hold an id before every replica can route it.
/// </summary>
internal sealed class AffinitySniffingStream : ReadOnlyStream
{
    /// <summary>The most bytes looked at for top-level ids: OpenAI answers and first events start with them.</summary>
    public const int LookAhead = 4096;

    private readonly Stream _inner;
    private readonly bool _eventStream;
    private readonly AffinityAnswerIds _ids;
    private readonly Func<string, CancellationToken, ValueTask> _onId;
    private readonly ReasoningItemIdMatcher? _reasoning;
    private byte[]? _seen;
    private int _seenCount;
    private bool _idFound;
    private bool _parentFound;
    private string? _pendingParent;

    public AffinitySniffingStream(Stream inner, bool eventStream, Func<string, CancellationToken, ValueTask> onId)
        : this(inner, eventStream, AffinityAnswerIds.Id, onId)
    {
    }

    public AffinitySniffingStream(Stream inner, bool eventStream, AffinityAnswerIds ids, Func<string, CancellationToken, ValueTask> onId)
    {
        _inner = inner;
        _eventStream = eventStream;
        _ids = ids;
        _onId = onId;
        _reasoning = ids.ReasoningItems ? new ReasoningItemIdMatcher() : null;
        _seen = ids.IdProperty is null && ids.ParentProperty is null ? null : ArrayPool<byte>.Shared.Rent(LookAhead);
    }

    private bool IsSniffing => _seen is not null || _reasoning is { IsFull: false };

    public override int Read(Span<byte> buffer)
    {
        var read = _inner.Read(buffer);
        if (IsSniffing && !buffer.IsEmpty)
        {
            var scan = new Scan();
            while (Next(buffer[..read], ref scan) is { } id)
            {
                // A synchronous reader waits synchronously, as it asked to.
                _onId(id, CancellationToken.None).AsTask().GetAwaiter().GetResult();
            }
        }

        return read;
    }

    /// <remarks>
    /// A zero-byte read (a <c>PipeReader</c> with <c>useZeroByteReads</c> waits for data that
    /// way) returns 0 without the body being over: only a read that asked for bytes and got none ends it.
    /// </remarks>
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        => IsSniffing && !buffer.IsEmpty ? SniffAsync(buffer, cancellationToken) : _inner.ReadAsync(buffer, cancellationToken);

    private async ValueTask<int> SniffAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        var read = await _inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        var scan = new Scan();
        while (Next(buffer.Span[..read], ref scan) is { } id)
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

    /// <summary>The next id that the bytes just read complete, or <see langword="null"/> when they complete no more.</summary>
    private string? Next(ReadOnlySpan<byte> read, ref Scan scan)
    {
        if (!scan.LookedAhead)
        {
            scan.LookedAhead = true;
            if (_seen is not null && Look(read) is { } id)
            {
                return id;
            }
        }

        if (_pendingParent is { } parent)
        {
            _pendingParent = null;
            return parent;
        }

        return _reasoning?.Next(read, ref scan.Offset);
    }

    /// <summary>Adds the bytes just read to the look-ahead and reads the top-level ids; at the end gives the buffer back.</summary>
    private string? Look(ReadOnlySpan<byte> read)
    {
        var seen = _seen!;
        var take = Math.Min(read.Length, LookAhead - _seenCount);
        read[..take].CopyTo(seen.AsSpan(_seenCount));
        _seenCount += take;
        var complete = read.Length == 0 || _seenCount == LookAhead;
        var result = AffinityIdReader.TryRead(seen.AsSpan(0, _seenCount), _eventStream, complete, _ids.IdProperty, _ids.ParentProperty, out var id, out var parent);
        if (result == AffinityIdReader.Result.Done)
        {
            Release();
        }

        // The reader finds again what it found before: each id is handed out once.
        id = _idFound ? null : id;
        _idFound |= id is not null;
        if (!_parentFound && parent is not null)
        {
            _parentFound = true;
            _pendingParent = parent;
        }

        return id ?? TakePendingParent();
    }

    private string? TakePendingParent()
    {
        var parent = _pendingParent;
        _pendingParent = null;
        return parent;
    }

    private void Release()
    {
        if (Interlocked.Exchange(ref _seen, null) is { } seen)
        {
            ArrayPool<byte>.Shared.Return(seen);
        }
    }

    /// <summary>Where the scan of one read is.</summary>
    private struct Scan
    {
        public bool LookedAhead;
        public int Offset;
    }
}
