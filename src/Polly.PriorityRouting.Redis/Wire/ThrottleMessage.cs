using System.Globalization;

namespace Polly.PriorityRouting.Redis;

/// <summary>
/// The pub/sub payload announcing that a backend or partition was marked:
/// <c>2|{sender}|{remaining ms}|{reason}|{encoded key}</c>, the key written by <see cref="StateKeyEncoding"/>.
/// </summary>
/// <remarks>
/// The deadline travels as the time remaining when the writer marked it, never as an absolute moment, so that a
/// reader whose clock is skewed still holds the backend for the right duration on its own clock. The sender is a
/// random identifier of the writing store, which lets a store ignore its own announcements. The encoded key comes last
/// and is length-prefixed, so the identity and the partition may contain any character. Version 1 (<c>1|…|{name}</c>,
/// keyed by name) is no longer read: a reader ignores any other version.
/// </remarks>
internal readonly record struct ThrottleMessage(string Sender, long RemainingMilliseconds, BackendUnavailableReason Reason, BackendStateKey Key)
{
    /// <summary>The longest payload a reader looks at, in characters; anything longer is ignored unread.</summary>
    public const int MaxLength = 4096;

    private const int MaxSenderLength = 64;
    private const string Version = "2";
    private const char Separator = '|';

    public string Format() => string.Create(
        CultureInfo.InvariantCulture,
        $"{Version}{Separator}{Sender}{Separator}{RemainingMilliseconds}{Separator}{(int)Reason}{Separator}{StateKeyEncoding.Encode(Key)}");

    /// <summary>
    /// Reads a payload; never throws, whatever it holds.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<char> payload, out ThrottleMessage message)
    {
        message = default;
        if (payload.IsEmpty || payload.Length > MaxLength)
        {
            return false;
        }

        // Five fields at most: the last one holds the rest of the payload, separators included.
        Span<Range> fields = stackalloc Range[5];
        if (payload.Split(fields, Separator) != 5 ||
            !payload[fields[0]].SequenceEqual(Version) ||
            payload[fields[1]].Length is 0 or > MaxSenderLength ||
            !long.TryParse(payload[fields[2]], NumberStyles.None, CultureInfo.InvariantCulture, out var remaining) ||
            !int.TryParse(payload[fields[3]], NumberStyles.None, CultureInfo.InvariantCulture, out var reason) ||
            !StateKeyEncoding.TryDecode(payload[fields[4]], out var key))
        {
            return false;
        }

        message = new ThrottleMessage(payload[fields[1]].ToString(), remaining, ToReason(reason), key);
        return true;
    }

    // A newer writer may know reasons this reader does not: they still take the backend out, as "other".
    internal static BackendUnavailableReason ToReason(int value)
        => Enum.IsDefined((BackendUnavailableReason)value) ? (BackendUnavailableReason)value : BackendUnavailableReason.Other;

    /// <summary>
    /// Reads the reason stored as a key's value, as the script answers it; anything unreadable still counts, as "other".
    /// </summary>
    internal static BackendUnavailableReason ParseStoredReason(string? stored)
        => TryParseStoredReason(stored, out var reason) ? reason : BackendUnavailableReason.Other;

    /// <summary>
    /// Reads the reason stored as a key's value: an integer, an unknown one read as "other". A key whose value is not an
    /// integer was not written by a store, and is not loaded.
    /// </summary>
    internal static bool TryParseStoredReason(string? stored, out BackendUnavailableReason reason)
    {
        if (stored is { Length: > 0 and <= 10 } && int.TryParse(stored, NumberStyles.None, CultureInfo.InvariantCulture, out var value))
        {
            reason = ToReason(value);
            return true;
        }

        reason = BackendUnavailableReason.Other;
        return false;
    }
}
