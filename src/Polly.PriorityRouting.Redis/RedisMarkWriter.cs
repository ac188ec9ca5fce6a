using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis;

/// <summary>
/// Writes one mark to Redis with <see cref="MarkUnavailableScript"/> and, when Redis already holds a later deadline,
/// adopts it in the mirror (bounded like any deadline from elsewhere).
/// </summary>
internal sealed class RedisMarkWriter
{
    private readonly RedisStoreLayout _layout;
    private readonly LocalMirror _mirror;
    private readonly string _instanceId;
    private string _publishedChannelName;

    public RedisMarkWriter(RedisStoreLayout layout, LocalMirror mirror, string instanceId)
    {
        _layout = layout;
        _mirror = mirror;
        _instanceId = instanceId;
        _publishedChannelName = layout.ChannelName;
    }

    /// <summary>
    /// Adds the multiplexer's <c>channelPrefix</c> to the channel the script publishes on, as the subscription has it.
    /// </summary>
    public void UseChannelPrefix(string channelPrefix) => Volatile.Write(ref _publishedChannelName, channelPrefix + _layout.ChannelName);

    /// <summary>
    /// Runs the script; throws what StackExchange.Redis throws (the caller decides what a failure means). A node that
    /// refuses the write as a read-only replica (<c>READONLY</c>: a failed-over primary that returned, while
    /// StackExchange.Redis still believes it a primary) makes StackExchange.Redis check the roles again, and the write is
    /// tried once more.
    /// </summary>
    public async Task WriteAsync(IConnectionMultiplexer multiplexer, BackendStateKey key, long remainingMilliseconds, BackendUnavailableReason reason)
    {
        var message = new ThrottleMessage(_instanceId, remainingMilliseconds, reason, key);
        RedisValue[] arguments = [remainingMilliseconds, (int)reason, Volatile.Read(ref _publishedChannelName), message.Format(), _mirror.MaxMilliseconds];
        RedisResult result;
        try
        {
            result = await multiplexer.GetDatabase().ScriptEvaluateAsync(MarkUnavailableScript.Source, [_layout.KeyOf(key)], arguments).ConfigureAwait(false);
        }
        catch (RedisServerException e) when (e.Message.StartsWith("READONLY", StringComparison.Ordinal))
        {
            await multiplexer.ConfigureAsync().ConfigureAwait(false);
            result = await multiplexer.GetDatabase().ScriptEvaluateAsync(MarkUnavailableScript.Source, [_layout.KeyOf(key)], arguments).ConfigureAwait(false);
        }

        if (result is { Length: 2 } && result[0] is { IsNull: false } remainingResult && remainingResult.Resp2Type == ResultType.Integer)
        {
            var remaining = (long)remainingResult;
            if (remaining > remainingMilliseconds)
            {
                // Another replica already holds the backend longer: this replica learns it from the answer.
                _mirror.Adopt(key, remaining, ThrottleMessage.ParseStoredReason((string?)result[1]));
            }
        }
    }
}
