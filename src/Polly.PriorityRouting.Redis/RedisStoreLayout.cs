using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis;

/// <summary>
/// Where the store keeps things in Redis: one string key per unavailable backend, and one pub/sub channel.
/// </summary>
internal sealed class RedisStoreLayout
{
    private readonly string _keyPrefix;

    public RedisStoreLayout(string keyPrefix, string channelName)
    {
        _keyPrefix = keyPrefix;
        ChannelName = channelName;
        Channel = RedisChannel.Literal(channelName);
        ScanPattern = keyPrefix + "*";
    }

    public string ChannelName { get; }

    /// <summary>
    /// Gets the channel to subscribe to; the multiplexer adds its <c>channelPrefix</c>, if any, to it.
    /// </summary>
    public RedisChannel Channel { get; }

    public RedisValue ScanPattern { get; }

    public RedisKey KeyOf(string backendName) => _keyPrefix + backendName;

    public bool TryGetBackendName(RedisKey key, out string backendName)
    {
        var text = (string?)key;
        if (text is null || text.Length <= _keyPrefix.Length || !text.StartsWith(_keyPrefix, StringComparison.Ordinal))
        {
            backendName = string.Empty;
            return false;
        }

        backendName = text[_keyPrefix.Length..];
        return true;
    }
}
