using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis;

/// <summary>
/// The store's subscription to its channel: subscribes, proves the subscription live with an echo, and handles what
/// arrives — a peer's mark (adopted into the mirror), a budget (to <see cref="RedisBudgetChannel"/>), this replica's
/// own echo; anything else is ignored.
/// </summary>
internal sealed partial class RedisChannelListener
{
    // How long a pass waits for its own echo to come back through the subscription.
    private static readonly TimeSpan EchoTimeout = TimeSpan.FromSeconds(2);

    private readonly RedisChannel _channel;
    private readonly LocalMirror _mirror;
    private readonly RedisBudgetChannel _budgets;
    private readonly string _instanceId;
    private readonly ILogger _logger;
    private readonly Action<RedisChannel, RedisValue> _onMessage;
    private int _subscribed;
    private PendingEcho? _echo;

    public RedisChannelListener(RedisChannel channel, LocalMirror mirror, RedisBudgetChannel budgets, string instanceId, ILogger logger)
    {
        _channel = channel;
        _mirror = mirror;
        _budgets = budgets;
        _instanceId = instanceId;
        _logger = logger;
        _onMessage = OnMessage;
    }

    /// <summary>Subscribes unless already subscribed (StackExchange.Redis itself subscribes again on every reconnection).</summary>
    public async Task EnsureSubscribedAsync(ISubscriber subscriber)
    {
        if (Volatile.Read(ref _subscribed) == 1)
        {
            return;
        }

        // A failed earlier attempt may have left the handler registered: never register it twice.
        await subscriber.UnsubscribeAsync(_channel, _onMessage).ConfigureAwait(false);
        await subscriber.SubscribeAsync(_channel, _onMessage).ConfigureAwait(false);
        Volatile.Write(ref _subscribed, 1);
    }

    /// <summary>
    /// Publishes an echo on the channel and waits, bounded, until this replica's own subscription receives it. When it
    /// does not, the subscription is on a node that no longer hears the primary (a failover): the next
    /// <see cref="EnsureSubscribedAsync"/> subscribes again.
    /// </summary>
    public async Task<bool> EchoAsync(ISubscriber subscriber, CancellationToken cancellationToken)
    {
        var token = Guid.NewGuid().ToString("N");
        var received = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _echo, new PendingEcho(token, received));
        await subscriber.PublishAsync(_channel, EchoMessage.Format(_instanceId, token)).ConfigureAwait(false);
        try
        {
            await received.Task.WaitAsync(EchoTimeout, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            Volatile.Write(ref _subscribed, 0);
            return false;
        }
    }

    /// <summary>Unsubscribes without waiting (disposal).</summary>
    public void Unsubscribe(IConnectionMultiplexer? multiplexer)
    {
        try
        {
            multiplexer?.GetSubscriber().Unsubscribe(_channel, _onMessage, CommandFlags.FireAndForget);
        }
        catch (Exception e) when (e is RedisException or ObjectDisposedException)
        {
            // Nothing to unsubscribe from when Redis is gone.
        }
    }

    private void OnMessage(RedisChannel channel, RedisValue payload)
    {
        // Bounded before it is decoded: a stray publisher cannot make this replica read megabytes.
        var text = payload.IsNullOrEmpty || payload.Length() > ThrottleMessage.MaxLength * 4 ? null : (string?)payload;
        if (text is not null && EchoMessage.TryParse(text, out var sender, out var token))
        {
            if (sender == _instanceId && Volatile.Read(ref _echo) is { } echo && echo.Token == token)
            {
                echo.Received.TrySetResult();
            }

            return;
        }

        if (text is not null && BudgetMessage.IsBudgetMessage(text))
        {
            if (!_budgets.Receive(text))
            {
                Log.IgnoredMalformedMessage(_logger, channel.ToString());
            }

            return;
        }

        if (text is null || !ThrottleMessage.TryParse(text.AsSpan(), out var message))
        {
            Log.IgnoredMalformedMessage(_logger, channel.ToString());
            return;
        }

        if (message.Sender == _instanceId)
        {
            return;
        }

        // The writer sent the time left, not a moment: the deadline is set on this replica's own clock, bounded.
        _mirror.Adopt(message.Key, message.RemainingMilliseconds, message.Reason);
    }

    private sealed record PendingEcho(string Token, TaskCompletionSource Received);

    private static partial class Log
    {
        [LoggerMessage(3, LogLevel.Debug, "Ignored a malformed message on the channel {Channel}.")]
        public static partial void IgnoredMalformedMessage(ILogger logger, string channel);
    }
}
