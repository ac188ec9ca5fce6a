using System.Globalization;

namespace Polly.PriorityRouting.Redis;

/// <summary>
/// Writes a <see cref="BackendStateKey"/> as one string that both the Redis key and the pub/sub message end with:
/// <c>{length of the identity}:{identity}</c>, then <c>#{partition}</c> when the key has a partition.
/// </summary>
/// <remarks>
/// The identity and the partition may contain any character (<c>|</c>, <c>#</c>, <c>:</c>, braces…). The length prefix
/// (in UTF-16 code units, decimal, no leading zero) says where the identity ends, so whatever follows it is the
/// partition: <c>24:ptu@https://ptu.example.com#gpt-4o</c>. A key without a partition and a key with an empty partition
/// differ (<c>…com</c> and <c>…com#</c>). Both fields are bounded, so that a reader never holds more than a few KB for
/// one key, whoever wrote it.
/// </remarks>
internal static class StateKeyEncoding
{
    /// <summary>The longest backend identity that is shared through Redis, in characters.</summary>
    public const int MaxBackendLength = 2048;

    /// <summary>The longest partition that is shared through Redis, in characters.</summary>
    public const int MaxPartitionLength = 1024;

    /// <summary>The longest encoded key: the length prefix, the separator, both fields and the partition marker.</summary>
    public const int MaxEncodedLength = 4 + 1 + MaxBackendLength + 1 + MaxPartitionLength;

    private const char LengthSeparator = ':';
    private const char PartitionMarker = '#';

    /// <summary>
    /// Returns whether the key fits the bounds; a key that does not is kept locally and never written to Redis.
    /// </summary>
    public static bool CanEncode(BackendStateKey key)
        => key.Backend is { Length: > 0 and <= MaxBackendLength } && (key.Partition?.Length ?? 0) <= MaxPartitionLength;

    public static string Encode(BackendStateKey key)
    {
        var length = key.Backend.Length.ToString(CultureInfo.InvariantCulture);
        return key.Partition is null
            ? string.Concat(length, ":", key.Backend)
            : string.Concat(length, ":", key.Backend, "#", key.Partition);
    }

    /// <summary>
    /// Reads an encoded key; never throws, rejects anything that <see cref="Encode"/> would not have written.
    /// </summary>
    public static bool TryDecode(ReadOnlySpan<char> text, out BackendStateKey key)
    {
        key = default;
        if (text.Length > MaxEncodedLength)
        {
            return false;
        }

        var separator = text.IndexOf(LengthSeparator);
        if (separator is < 1 or > 4 ||
            text[0] == '0' ||
            !int.TryParse(text[..separator], NumberStyles.None, CultureInfo.InvariantCulture, out var backendLength) ||
            backendLength > MaxBackendLength ||
            text.Length - separator - 1 < backendLength)
        {
            return false;
        }

        var rest = text[(separator + 1)..];
        var backend = rest[..backendLength];
        var tail = rest[backendLength..];
        if (tail.IsEmpty)
        {
            key = new BackendStateKey(backend.ToString());
            return true;
        }

        if (tail[0] != PartitionMarker || tail.Length - 1 > MaxPartitionLength)
        {
            return false;
        }

        key = new BackendStateKey(backend.ToString(), tail[1..].ToString());
        return true;
    }
}
