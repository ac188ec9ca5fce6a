namespace Polly.PriorityRouting.Redis;

/// <summary>
/// The pub/sub payload a replica publishes to itself to prove its subscription live before it loads the state:
/// <c>echo|{sender}|{token}</c>. Every other replica ignores it (an older one reads it as malformed and skips it).
/// </summary>
internal static class EchoMessage
{
    private const string Prefix = "echo|";

    public static string Format(string sender, string token) => $"{Prefix}{sender}|{token}";

    /// <summary>Reads an echo; never throws, whatever the payload holds.</summary>
    public static bool TryParse(string payload, out string sender, out string token)
    {
        sender = token = string.Empty;
        if (!payload.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return false;
        }

        var rest = payload.AsSpan(Prefix.Length);
        var separator = rest.IndexOf('|');
        if (separator <= 0)
        {
            return false;
        }

        sender = rest[..separator].ToString();
        token = rest[(separator + 1)..].ToString();
        return true;
    }
}
