namespace Polly.PriorityRouting.Redis;

/// <summary>
/// The options of the Redis-backed <see cref="IBackendStateStore"/> that shares throttle state across the replicas of
/// an app.
/// </summary>
/// <remarks>
/// Each backend (or throttle partition of one) marked unavailable is one Redis string key, <see cref="KeyPrefix"/>
/// followed by the length-prefixed backend identity (<c>{Name}@{address}</c>) and partition, that expires at the
/// deadline. Every change is pushed to the other replicas on one pub/sub channel. See docs/distributed.md for the key
/// layout and the message format.
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

    /// <summary>
    /// Gets or sets the longest unavailability the store accepts from elsewhere: a deadline received from another
    /// replica, loaded from Redis, or answered by Redis to a write is held at most this long, and a key that Redis holds
    /// longer is overwritten by the next mark.
    /// </summary>
    /// <value>
    /// The default value is <see cref="DefaultMaxUnavailability"/> (5 minutes, the strategy's default longest cooldown
    /// and ejection time). It must be more than zero and at most one day. Set it at least as long as the longest
    /// <c>MaxCooldown</c> and <c>MaxEjectionTime</c> of the pipelines that share the store: longer deadlines are
    /// shared shortened to it.
    /// </value>
    /// <remarks>
    /// The keep-later rule makes a deadline irreversible until it passes: without a bound, one far-out deadline (a
    /// misconfigured replica, a bad header, a stray key) would take a backend out for as long as it says.
    /// </remarks>
    public TimeSpan MaxUnavailability { get; set; } = DefaultMaxUnavailability;

    /// <summary>
    /// Gets or sets how often a replica publishes the rate-limit budgets its answers report, at most: the first
    /// observation after a quiet interval is published at once, the later ones of the interval together (the latest per
    /// backend) at its end.
    /// </summary>
    /// <value>
    /// The default value is <see cref="DefaultBudgetPublishInterval"/> (100 ms). It must be between zero (every answer
    /// at once) and 10 seconds. Budgets are published only when the strategy's <c>TokenBudgets</c> is on and answers
    /// report <c>x-ratelimit-remaining-*</c>; see docs/distributed.md for what the interval costs and buys.
    /// </value>
    public TimeSpan BudgetPublishInterval { get; set; } = DefaultBudgetPublishInterval;

    /// <summary>
    /// Gets or sets the longest a request waits for Redis: to look up an affinity pin it has not seen, or to take the pin
    /// of an id it created. Beyond it the request goes on as during an outage (the id is routed normally, the pin is
    /// kept and published later), and the store declares an outage.
    /// </summary>
    /// <value>
    /// The default value is <see cref="DefaultAffinityTimeout"/> (1 second). It must be more than zero and at most
    /// 30 seconds. During an outage no request waits for Redis at all; a caller's cancellation ends the wait at once.
    /// </value>
    public TimeSpan AffinityTimeout { get; set; } = DefaultAffinityTimeout;

    /// <summary>
    /// Gets or sets how long the host's start waits for the store's first load of the shared state, so that the first
    /// request of a fresh replica already skips the backends other replicas marked.
    /// </summary>
    /// <value>
    /// The default value is <see cref="DefaultFirstLoadTimeout"/> (2 seconds). It must be between zero (never wait) and
    /// one minute. The wait ends at once when Redis is found unreachable: a replica started during an outage starts
    /// with local state, as ever.
    /// </value>
    public TimeSpan FirstLoadTimeout { get; set; } = DefaultFirstLoadTimeout;

    /// <summary>
    /// Gets or sets a value indicating whether each attempt reserves its estimated cost in a budget that every replica
    /// shares in Redis, before it is sent (see <see cref="IBackendReservationStore"/>).
    /// </summary>
    /// <value>
    /// The default value is <see langword="false"/>: replicas share the budgets their answers report, and each admits
    /// against its own view. Turn it on when many replicas send requests that stay in flight for seconds (completions)
    /// to backends that report token budgets: it costs one Redis round trip per attempt (at most
    /// <see cref="ReservationTimeout"/>), and closes the gap in which replicas that have not yet heard of each other's
    /// spend over-admit and collect 429s. Needs the strategy's <c>TokenBudgets</c>; see docs/distributed.md.
    /// </value>
    public bool Reservations { get; set; }

    /// <summary>
    /// Gets or sets the longest an attempt waits for its reservation in Redis. Beyond it the attempt is admitted by the
    /// replica's own budget view, as during an outage (fail open), and the store logs that Redis is slow (once, until it
    /// answers in time again).
    /// </summary>
    /// <value>
    /// The default value is <see cref="DefaultReservationTimeout"/> (20 milliseconds). It must be more than zero and at
    /// most 1 second. During an outage no attempt waits for Redis at all.
    /// </value>
    public TimeSpan ReservationTimeout { get; set; } = DefaultReservationTimeout;

    /// <summary>
    /// The default value of <see cref="ReservationTimeout"/>: 20 milliseconds.
    /// </summary>
    public static readonly TimeSpan DefaultReservationTimeout = TimeSpan.FromMilliseconds(20);

    /// <summary>
    /// The default value of <see cref="AffinityTimeout"/>: 1 second.
    /// </summary>
    public static readonly TimeSpan DefaultAffinityTimeout = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The default value of <see cref="FirstLoadTimeout"/>: 2 seconds.
    /// </summary>
    public static readonly TimeSpan DefaultFirstLoadTimeout = TimeSpan.FromSeconds(2);

    /// <summary>
    /// The default value of <see cref="BudgetPublishInterval"/>: 100 milliseconds.
    /// </summary>
    public static readonly TimeSpan DefaultBudgetPublishInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// The default value of <see cref="MaxUnavailability"/>: 5 minutes.
    /// </summary>
    public static readonly TimeSpan DefaultMaxUnavailability = TimeSpan.FromMinutes(5);

    internal string EffectiveChannelName => ChannelName ?? KeyPrefix + "events";
}
