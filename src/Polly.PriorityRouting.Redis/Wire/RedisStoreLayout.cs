using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis;

/// <summary>
/// Where the store keeps things in Redis: one string key per unavailable backend or partition, and one pub/sub channel.
/// </summary>
/// <remarks>
/// A key is the prefix followed by the <see cref="StateKeyEncoding">encoded</see> backend identity and partition:
/// <c>polly:priority-routing:24:ptu@https://ptu.example.com#gpt-4o</c>. Keys carry no hash tag of their own, so on a
/// Redis Cluster the backends spread over the shards (a braced part of an identity, a partition or the prefix is a hash
/// tag to Redis, which only moves the key to another slot).
/// <para>
/// Affinity pins live outside the prefix, under <c>affinity:{prefix}</c>, so that the throttle state's <c>SCAN</c>
/// never walks them: <c>affinity:{prefix}{id}</c> for an id, <c>affinity:{prefix}~{key}</c> for a soft-affinity key
/// (ids never contain <c>~</c>).
/// </para>
/// <para>
/// Shared reservations (when on) live outside the prefix too, one hash per backend or partition under
/// <c>reservations:{prefix}</c> (see <see cref="ReservationKeyOf"/>).
/// </para>
/// </remarks>
internal sealed class RedisStoreLayout
{
    /// <summary>What the key prefix is preceded by for affinity keys.</summary>
    public const string AffinityPrefix = "affinity:";

    /// <summary>What the key prefix is preceded by for the shared reservations' keys.</summary>
    public const string ReservationPrefix = "reservations:";

    /// <summary>What follows a budget's key in the key of its claims.</summary>
    public const string ClaimsSuffix = ":q";

    /// <summary>What follows a budget's key in the key of a claimant's record, before the claimant.</summary>
    public const string ClaimantSuffix = ":c:";

    /// <summary>What follows a budget's key in the key of its flow claims (a budget refilled continuously).</summary>
    public const string FlowClaimsSuffix = ":f";

    /// <summary>What a soft-affinity key is preceded by, after the affinity prefix.</summary>
    public const string StickyPrefix = "~";

    private readonly string _keyPrefix;
    private readonly string _affinityKeyPrefix;
    private readonly string _stickyKeyPrefix;
    private readonly string _reservationKeyPrefix;

    public RedisStoreLayout(string keyPrefix, string channelName)
    {
        _keyPrefix = keyPrefix;
        _affinityKeyPrefix = AffinityPrefix + keyPrefix;
        _stickyKeyPrefix = _affinityKeyPrefix + StickyPrefix;
        _reservationKeyPrefix = ReservationPrefix + keyPrefix;
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

    /// <summary>
    /// Returns the Redis key of a backend or partition; call only with a key <see cref="StateKeyEncoding.CanEncode"/> accepts.
    /// </summary>
    public RedisKey KeyOf(BackendStateKey key) => _keyPrefix + StateKeyEncoding.Encode(key);

    /// <summary>Returns the Redis key of an id's pin.</summary>
    public RedisKey AffinityKeyOf(string id) => _affinityKeyPrefix + id;

    /// <summary>
    /// Returns the Redis key of a backend's (or partition's) shared reservations: <c>reservations:</c>, the prefix, and
    /// the encoded key in braces — a hash tag, so that the budget's slot on a Redis Cluster is the budget's own whatever
    /// the prefix (and any later key of the same budget would land beside it); call only with a key
    /// <see cref="StateKeyEncoding.CanEncode"/> accepts.
    /// </summary>
    public RedisKey ReservationKeyOf(BackendStateKey key) => string.Concat(_reservationKeyPrefix, "{", StateKeyEncoding.Encode(key), "}");

    /// <summary>
    /// Returns the Redis key of a budget's claims (<see cref="ReservationScripts.Reserve"/>): its budget's key and
    /// <c>:q</c>, so it shares the budget's hash tag (and slot).
    /// </summary>
    public static RedisKey ClaimsKeyOf(RedisKey reservationKey) => reservationKey.Append(ClaimsSuffix);

    /// <summary>
    /// Returns the Redis key of a budget's flow claims (<see cref="ReservationScripts.FlowReserve"/>: a sorted set of
    /// claims on a budget refilled continuously, by moment): its budget's key and <c>:f</c>, so it shares the budget's
    /// hash tag (and slot).
    /// </summary>
    public static RedisKey FlowClaimsKeyOf(RedisKey reservationKey) => reservationKey.Append(FlowClaimsSuffix);

    /// <summary>
    /// Returns the Redis key of a claimant's record on a budget: its budget's key, <c>:c:</c> and the claimant as 16
    /// hexadecimal digits, so it shares the budget's hash tag (and slot).
    /// </summary>
    public static RedisKey ClaimantKeyOf(RedisKey reservationKey, long claimant)
        => reservationKey.Append(ClaimantSuffix + claimant.ToString("x16", System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>Returns the Redis key of a soft-affinity key.</summary>
    public RedisKey StickyKeyOf(string key) => _stickyKeyPrefix + key;

    /// <summary>
    /// Reads back the backend and partition of a key found under the prefix; rejects keys this layout did not write.
    /// </summary>
    public bool TryGetStateKey(RedisKey redisKey, out BackendStateKey key)
    {
        var text = (string?)redisKey;
        if (text is null ||
            text.Length > _keyPrefix.Length + StateKeyEncoding.MaxEncodedLength ||
            !text.StartsWith(_keyPrefix, StringComparison.Ordinal))
        {
            key = default;
            return false;
        }

        return StateKeyEncoding.TryDecode(text.AsSpan(_keyPrefix.Length), out key);
    }
}
