namespace Polly.PriorityRouting.Redis;

/// <summary>
/// The options of the Redis-backed <see cref="IBackendStateStore"/> that shares throttle state across the replicas of
/// an app.
/// </summary>
/// <remarks>
/// Each backend marked unavailable is one Redis string key, <see cref="KeyPrefix"/> followed by the backend's name,
/// that expires at the backend's deadline. Every change is pushed to the other replicas on one pub/sub channel.
/// </remarks>
public sealed class PriorityRoutingRedisStoreOptions
{
    /// <summary>
    /// The default value of <see cref="KeyPrefix"/>.
    /// </summary>
    public const string DefaultKeyPrefix = "polly:priority-routing:";

    /// <summary>
    /// Gets or sets the StackExchange.Redis configuration string, for example
    /// <c>redis.example.net:6380,ssl=true,password=...</c>.
    /// </summary>
    /// <value>
    /// The default value is <see langword="null"/>, meaning the <c>IConnectionMultiplexer</c> registered in the service
    /// collection is used. TLS, user names and passwords are set here, with the standard keywords.
    /// </value>
    public string? Configuration { get; set; }

    /// <summary>
    /// Gets or sets the prefix of every key the store writes.
    /// </summary>
    /// <value>
    /// The default value is <see cref="DefaultKeyPrefix"/>. It must not be empty and must not contain the glob characters
    /// <c>* ? [ ] \</c>, because it is also the pattern of the <c>SCAN</c> that loads the state (and of an ACL key rule).
    /// </value>
    public string KeyPrefix { get; set; } = DefaultKeyPrefix;

    /// <summary>
    /// Gets or sets the pub/sub channel on which replicas push the backends they mark.
    /// </summary>
    /// <value>
    /// The default value is <see langword="null"/>, meaning <see cref="KeyPrefix"/> followed by <c>events</c>. Channels
    /// are not scoped to a Redis database: apps that share a server must differ in their prefix or their channel.
    /// </value>
    public string? ChannelName { get; set; }

    internal string EffectiveChannelName => ChannelName ?? KeyPrefix + "events";
}
