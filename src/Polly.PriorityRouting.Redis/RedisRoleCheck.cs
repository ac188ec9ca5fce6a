using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis;

/// <summary>
/// Which nodes the shared state uses: the connected, writable primaries a synchronization may load, with the roles
/// checked again when none is found, and the nodes whose lost connection is no outage.
/// </summary>
internal sealed class RedisRoleCheck
{
    // How often, at most, StackExchange.Redis is asked to check the servers' roles again: a check raises configuration
    // events, which request passes of their own. When its routing is in doubt, a failure of a few hundred milliseconds
    // must not become an outage (RedisOutageState.OutageAfter), so it is asked sooner.
    private static readonly TimeSpan RoleCheckInterval = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan RoutingCheckInterval = TimeSpan.FromMilliseconds(250);

    // How long a store connected only to replicas waits for a promotion before it warns: a failover takes seconds, and
    // meanwhile StackExchange.Redis may still send writes to the replica (READONLY), which proves nothing.
    private static readonly TimeSpan ReplicaGrace = TimeSpan.FromSeconds(10);

    // How long two connected primaries (a failed-over primary back as one) are waited out before they are an outage:
    // Sentinel makes the returning node a replica some 10 s after it answers. Nothing is written meanwhile.
    private static readonly TimeSpan SplitGrace = TimeSpan.FromSeconds(30);

    private readonly RedisConnection _connection;
    private readonly RedisChannel _channel;
    private long _lastRoleCheckAt = long.MinValue / 2;
    private int _routingInDoubt;

    public RedisRoleCheck(RedisConnection connection, RedisChannel channel)
    {
        _connection = connection;
        _channel = channel;
    }

    /// <summary>
    /// Notes that StackExchange.Redis may route to a primary it elected before the roles changed (a synchronization
    /// failed although every slot had a connected, writable primary: after the returning old primary's connections are
    /// closed, no server is selectable until it elects again), so that the next pass asks it to check the roles again.
    /// </summary>
    public void DoubtRouting() => Volatile.Write(ref _routingInDoubt, 1);

    /// <summary>
    /// Returns the connected, writable primaries that hold every slot, or no primaries when some slot has none: reported,
    /// unless two nodes say they are the primary and <see cref="SplitGrace"/> has not passed (<c>WaitingOutSplit</c>).
    /// When a server is connected but no single writable primary is found, or the routing is in doubt
    /// (<see cref="DoubtRouting"/>), StackExchange.Redis is asked to check the roles again: a hand-made promotion is
    /// otherwise seen only at its next configuration check, a minute later.
    /// </summary>
    public async Task<(IReadOnlyList<IServer>? Primaries, bool WaitingOutSplit)> WritablePrimariesAsync(IConnectionMultiplexer multiplexer)
    {
        var topology = RedisTopology.Of(multiplexer);
        var routingInDoubt = Volatile.Read(ref _routingInDoubt) == 1;
        if (topology.IsComplete && !routingInDoubt)
        {
            return (topology.Primaries, false);
        }

        var interval = routingInDoubt ? RoutingCheckInterval : RoleCheckInterval;
        if (topology.AnyConnected && Environment.TickCount64 - Volatile.Read(ref _lastRoleCheckAt) >= (long)interval.TotalMilliseconds)
        {
            Volatile.Write(ref _lastRoleCheckAt, Environment.TickCount64);
            Volatile.Write(ref _routingInDoubt, 0);
            await multiplexer.ConfigureAsync().ConfigureAwait(false);
            topology = RedisTopology.Of(multiplexer);
            if (topology.IsComplete)
            {
                return (topology.Primaries, false);
            }
        }

        if (topology.IsComplete)
        {
            // The routing was in doubt, and the roles were checked less than an interval ago: try as it is.
            return (topology.Primaries, false);
        }

        if (topology.IsSplit && _connection.Outage.UnsharedFor < SplitGrace)
        {
            // Not yet a failure: the returning node is waited for until it is a replica.
            return (null, true);
        }

        if (topology.OnlyReplicas is { Count: > 0 } replicas && _connection.Outage.UnsharedFor >= ReplicaGrace)
        {
            _connection.Outage.ReportOnlyReplicas(replicas);
        }
        else
        {
            // A shard that cannot be loaded: the state is not shared, whatever the other shards say.
            _connection.Outage.ReportNotReady();
        }

        return (null, false);
    }

    /// <summary>
    /// Returns whether a node is one the shared state does not use: every slot has a connected, writable primary other
    /// than it, and it does not carry the subscription. A failover's old primary that returns is one, both while it still
    /// says it is a primary and once Sentinel has made it a replica and closed its clients' connections.
    /// </summary>
    public bool IsSpare(System.Net.EndPoint? endPoint)
    {
        if (endPoint is null || _connection.Multiplexer is not { } multiplexer)
        {
            return false;
        }

        try
        {
            return RedisTopology.Of(multiplexer, without: endPoint).IsComplete
                && !Equals(multiplexer.GetSubscriber().SubscribedEndpoint(_channel), endPoint);
        }
        catch (Exception e) when (e is RedisException or ObjectDisposedException)
        {
            return false;
        }
    }
}
