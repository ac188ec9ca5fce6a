using System.Globalization;

namespace Polly.PriorityRouting.Redis;

/// <summary>
/// The pub/sub payload sharing what a replica's answers reported about a backend's rate-limit budgets:
/// <c>b1|{sender}|{remaining tokens}|{limit tokens}|{tokens reset ms}|{remaining requests}|{limit requests}|{requests reset ms}|{encoded key}</c>,
/// an unknown count empty, the key written by <see cref="StateKeyEncoding"/>.
/// </summary>
/// <remarks>
/// It travels on the channel of the throttle messages (<see cref="ThrottleMessage"/>), so that it needs no other
/// subscription nor ACL rule; its version field, <c>b1</c>, is one a throttle reader ignores. Resets travel as the
/// milliseconds left when the writer published, like deadlines, so that clock skew cannot move them.
/// </remarks>
internal readonly record struct BudgetMessage(
    string Sender,
    long? RemainingTokens,
    long? LimitTokens,
    long TokensResetMilliseconds,
    long? RemainingRequests,
    long? LimitRequests,
    long RequestsResetMilliseconds,
    BackendStateKey Key)
{
    private const string Version = "b1";
    private const string Prefix = Version + "|";
    private const int Fields = 9;
    private const int MaxSenderLength = 64;
    private const char Separator = '|';

    /// <summary>Returns whether a payload is a budget message (of any version this reader knows).</summary>
    public static bool IsBudgetMessage(ReadOnlySpan<char> payload) => payload.StartsWith(Prefix, StringComparison.Ordinal);

    /// <summary>Builds the message of an observation: resets as the whole milliseconds left at <paramref name="now"/>, at most <paramref name="maxMilliseconds"/>.</summary>
    public static BudgetMessage From(string sender, BackendStateKey key, BackendBudgetObservation observation, DateTimeOffset now, long maxMilliseconds) => new(
        sender,
        observation.RemainingTokens,
        observation.LimitTokens,
        ToMilliseconds(observation.TokensResetAt - now, maxMilliseconds),
        observation.RemainingRequests,
        observation.LimitRequests,
        ToMilliseconds(observation.RequestsResetAt - now, maxMilliseconds),
        key);

    /// <summary>Returns the observation on the reader's clock: resets at <paramref name="now"/> plus the time left, at most <paramref name="maxMilliseconds"/>.</summary>
    public BackendBudgetObservation ToObservation(DateTimeOffset now, long maxMilliseconds) => new(
        RemainingTokens,
        LimitTokens,
        now.AddMilliseconds(Math.Min(TokensResetMilliseconds, maxMilliseconds)),
        RemainingRequests,
        LimitRequests,
        now.AddMilliseconds(Math.Min(RequestsResetMilliseconds, maxMilliseconds)));

    public string Format() => string.Create(
        CultureInfo.InvariantCulture,
        $"{Prefix}{Sender}|{RemainingTokens}|{LimitTokens}|{TokensResetMilliseconds}|{RemainingRequests}|{LimitRequests}|{RequestsResetMilliseconds}|{StateKeyEncoding.Encode(Key)}");

    /// <summary>Reads a payload; never throws, whatever it holds.</summary>
    public static bool TryParse(ReadOnlySpan<char> payload, out BudgetMessage message)
    {
        message = default;
        if (payload.IsEmpty || payload.Length > ThrottleMessage.MaxLength)
        {
            return false;
        }

        // Nine fields at most: the last one holds the rest of the payload, separators included.
        Span<Range> fields = stackalloc Range[Fields];
        if (payload.Split(fields, Separator) != Fields ||
            !payload[fields[0]].SequenceEqual(Version) ||
            payload[fields[1]].Length is 0 or > MaxSenderLength ||
            !TryParseCount(payload[fields[2]], out var remainingTokens) ||
            !TryParseCount(payload[fields[3]], out var limitTokens) ||
            !TryParseMilliseconds(payload[fields[4]], out var tokensReset) ||
            !TryParseCount(payload[fields[5]], out var remainingRequests) ||
            !TryParseCount(payload[fields[6]], out var limitRequests) ||
            !TryParseMilliseconds(payload[fields[7]], out var requestsReset) ||
            (remainingTokens is null && remainingRequests is null) ||
            !StateKeyEncoding.TryDecode(payload[fields[8]], out var key))
        {
            return false;
        }

        message = new BudgetMessage(payload[fields[1]].ToString(), remainingTokens, limitTokens, tokensReset, remainingRequests, limitRequests, requestsReset, key);
        return true;
    }

    private static long ToMilliseconds(TimeSpan left, long maxMilliseconds)
        => left <= TimeSpan.Zero ? 0 : Math.Min((long)Math.Ceiling(left.TotalMilliseconds), maxMilliseconds);

    private static bool TryParseCount(ReadOnlySpan<char> field, out long? count)
    {
        count = null;
        if (field.IsEmpty)
        {
            return true;
        }

        if (long.TryParse(field, NumberStyles.None, CultureInfo.InvariantCulture, out var value))
        {
            count = value;
            return true;
        }

        return false;
    }

    private static bool TryParseMilliseconds(ReadOnlySpan<char> field, out long milliseconds)
        => long.TryParse(field, NumberStyles.None, CultureInfo.InvariantCulture, out milliseconds);
}
