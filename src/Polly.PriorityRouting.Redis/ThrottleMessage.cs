using System.Globalization;

namespace Polly.PriorityRouting.Redis;

/// <summary>
/// The pub/sub payload announcing that a backend was marked: <c>1|sender|remainingMs|reason|backendName</c>.
/// </summary>
/// <remarks>
/// The deadline travels as the time remaining when the writer marked it, never as an absolute moment, so that a
/// reader whose clock is skewed still holds the backend for the right duration on its own clock. The sender is a
/// random identifier of the writing store, which lets a store ignore its own announcements. The backend name comes
/// last because it may itself contain the separator.
/// </remarks>
internal readonly record struct ThrottleMessage(string Sender, long RemainingMilliseconds, BackendUnavailableReason Reason, string BackendName)
{
    private const string Version = "1";
    private const char Separator = '|';

    public string Format() => string.Create(
        CultureInfo.InvariantCulture,
        $"{Version}{Separator}{Sender}{Separator}{RemainingMilliseconds}{Separator}{(int)Reason}{Separator}{BackendName}");

    public static bool TryParse(string? payload, out ThrottleMessage message)
    {
        message = default;
        if (payload is null)
        {
            return false;
        }

        Span<Range> fields = stackalloc Range[5];
        var span = payload.AsSpan();
        if (span.Split(fields, Separator) != 5 ||
            !span[fields[0]].SequenceEqual(Version) ||
            !long.TryParse(span[fields[2]], NumberStyles.None, CultureInfo.InvariantCulture, out var remaining) ||
            !int.TryParse(span[fields[3]], NumberStyles.None, CultureInfo.InvariantCulture, out var reason) ||
            span[fields[4]].IsEmpty)
        {
            return false;
        }

        message = new ThrottleMessage(payload[fields[1]], remaining, ToReason(reason), payload[fields[4]]);
        return true;
    }

    // A newer writer may know reasons this reader does not: they still take the backend out, as "other".
    internal static BackendUnavailableReason ToReason(int value)
        => Enum.IsDefined((BackendUnavailableReason)value) ? (BackendUnavailableReason)value : BackendUnavailableReason.Other;

    /// <summary>
    /// Reads the reason stored as a key's value; anything unreadable still counts, as "other".
    /// </summary>
    internal static BackendUnavailableReason ParseStoredReason(string? stored)
        => int.TryParse(stored, NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? ToReason(value) : BackendUnavailableReason.Other;
}
