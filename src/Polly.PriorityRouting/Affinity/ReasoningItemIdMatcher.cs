namespace Polly.PriorityRouting;

/// <summary>
/// Finds the ids of reasoning items (<c>"id":"rs_…"</c>) anywhere in a Responses answer as it flows, a read at a time,
/// in constant memory: a match may be split across reads, and nothing is held back.
/// </summary>
/// <remarks>
/// Reasoning items appear in <c>output</c> of a JSON answer (possibly after its first 4 KB) and in later events of a
/// stream (<c>response.output_item.added</c> / <c>.done</c>, <c>response.completed</c>). A key is matched only where JSON
/// can start one (after <c>{</c>, <c>,</c> or white space), so text inside a string (its quotes escaped) never
/// matches. At most <see cref="MaxIds"/> distinct ids are found per answer: the answer comes from a peer.
/// </remarks>
internal sealed class ReasoningItemIdMatcher
{
    /// <summary>The most distinct ids one answer may pin.</summary>
    public const int MaxIds = 16;

    // Allocated on the first "id":"rs_ seen: most answers carry no reasoning item and cost only this object.
    private byte[]? _id;
    private string?[]? _found;
    private State _state;
    private int _matched;
    private int _idLength;
    private byte _previous = (byte)'\n';

    private enum State
    {
        Idle,
        InKey,
        AfterKey,
        AfterColon,
        InPrefix,
        InId,
    }

    /// <summary>Gets how many distinct ids were found.</summary>
    public int Count { get; private set; }

    /// <summary>Gets a value indicating whether no more ids will be found.</summary>
    public bool IsFull => Count == MaxIds;

    private static ReadOnlySpan<byte> Key => "\"id\""u8;

    private static ReadOnlySpan<byte> Prefix => "rs_"u8;

    /// <summary>
    /// Scans <paramref name="chunk"/> from <paramref name="offset"/> to the next new id; call again with the same chunk
    /// and offset until it returns <see langword="null"/>, then with the next read.
    /// </summary>
    public string? Next(ReadOnlySpan<byte> chunk, ref int offset)
    {
        while (offset < chunk.Length && !IsFull)
        {
            if (_state == State.Idle)
            {
                var rest = chunk[offset..];
                var at = rest.IndexOf(Key);
                if (at < 0)
                {
                    // A key split across reads starts at the end of this one.
                    var partial = PartialKeyAtEnd(rest);
                    if (partial > 0 && CanStartKey(chunk, chunk.Length - partial))
                    {
                        (_state, _matched) = (State.InKey, partial);
                    }

                    offset = chunk.Length;
                    break;
                }

                var start = offset + at;
                offset = start + Key.Length;
                if (CanStartKey(chunk, start))
                {
                    _state = State.AfterKey;
                }

                continue;
            }

            var b = chunk[offset++];
            if (Step(b) is { } id)
            {
                Remember(chunk, offset);
                return id;
            }
        }

        Remember(chunk, offset);
        return null;
    }

    private static int PartialKeyAtEnd(ReadOnlySpan<byte> rest)
    {
        for (var length = Math.Min(Key.Length - 1, rest.Length); length > 0; length--)
        {
            if (rest[^length..].SequenceEqual(Key[..length]))
            {
                return length;
            }
        }

        return 0;
    }

    private static bool IsWhiteSpace(byte b) => b is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n';

    private static bool IsIdByte(byte b) => char.IsAsciiLetterOrDigit((char)b) || b is (byte)'-' or (byte)'_' or (byte)'.';

    /// <summary>
    /// Advances over one byte; returns the id it completes, if new. A byte that breaks a partial match cannot begin a
    /// key itself in valid JSON (a key's quote follows <c>{</c>, <c>,</c> or white space), so matching restarts after it.
    /// </summary>
    private string? Step(byte b)
    {
        switch (_state)
        {
            case State.InKey:
                _state = b == Key[_matched] ? (++_matched == Key.Length ? State.AfterKey : State.InKey) : State.Idle;
                return null;
            case State.AfterKey:
                _state = IsWhiteSpace(b) ? State.AfterKey : b == (byte)':' ? State.AfterColon : State.Idle;
                return null;
            case State.AfterColon:
                (_state, _matched) = IsWhiteSpace(b) ? (State.AfterColon, 0) : b == (byte)'"' ? (State.InPrefix, 0) : (State.Idle, 0);
                return null;
            case State.InPrefix:
                if (b != Prefix[_matched])
                {
                    _state = State.Idle;
                    return null;
                }

                if (++_matched == Prefix.Length)
                {
                    _id ??= new byte[AffinityId.MaxLength];
                    Prefix.CopyTo(_id);
                    (_state, _idLength) = (State.InId, Prefix.Length);
                }

                return null;
            default:
                if (b == (byte)'"')
                {
                    _state = State.Idle;
                    return Found(_id.AsSpan(0, _idLength));
                }

                if (IsIdByte(b) && _idLength < AffinityId.MaxLength)
                {
                    _id![_idLength++] = b;
                }
                else
                {
                    _state = State.Idle;
                }

                return null;
        }
    }

    private bool CanStartKey(ReadOnlySpan<byte> chunk, int index)
    {
        var previous = index > 0 ? chunk[index - 1] : _previous;
        return previous is (byte)'{' or (byte)',' || IsWhiteSpace(previous);
    }

    /// <summary>Keeps the byte before <paramref name="offset"/>: the next byte's predecessor.</summary>
    private void Remember(ReadOnlySpan<byte> chunk, int offset)
    {
        if (offset > 0)
        {
            _previous = chunk[offset - 1];
        }
    }

    /// <summary>The id, unless this answer already gave it (a stream repeats each item in several events).</summary>
    private string? Found(ReadOnlySpan<byte> id)
    {
        _found ??= new string?[MaxIds];
        for (var i = 0; i < Count; i++)
        {
            if (System.Text.Ascii.Equals(id, _found[i]))
            {
                return null;
            }
        }

        var value = System.Text.Encoding.ASCII.GetString(id);
        _found[Count++] = value;
        return value;
    }
}
