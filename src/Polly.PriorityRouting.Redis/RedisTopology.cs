using System.Net;
using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis;

/// <summary>
/// What the multiplexer is connected to, as the synchronization and the writes need it: the connected, writable
/// primaries that hold the state, whether they hold all of it (and nothing else does), and the replicas when nothing
/// writable is connected.
/// </summary>
/// <remarks>
/// StackExchange.Redis keeps every node it ever knew in <c>GetServers()</c>: a primary that died and that a failover
/// replaced stays there, disconnected, for good. Only connected nodes count, so that the state is shared again whether
/// or not the dead node returns. On a Redis Cluster every node that owns slots (as the cluster configuration says: a
/// node that is down still owns its slots until a replica takes them) must be a connected primary; otherwise one
/// connected primary holds it all — and only one: two connected primaries without a cluster are a split (a failed-over
/// primary that returned and that Sentinel has not yet made a replica), during which StackExchange.Redis sends writes
/// to the one it elected, possibly the node whose data is about to be replaced.
/// </remarks>
internal sealed class RedisTopology
{
    private RedisTopology(IReadOnlyList<IServer> primaries, bool isComplete, bool anyConnected, IReadOnlyList<EndPoint> onlyReplicas, bool isSplit = false)
    {
        Primaries = primaries;
        IsComplete = isComplete;
        IsSplit = isSplit;
        AnyConnected = anyConnected;
        OnlyReplicas = onlyReplicas;
    }

    /// <summary>Gets the connected, writable primaries whose keys make the state.</summary>
    public IReadOnlyList<IServer> Primaries { get; }

    /// <summary>Gets whether every slot has a connected, writable primary, and no other primary competes with it.</summary>
    public bool IsComplete { get; }

    /// <summary>Gets whether, without a cluster, more than one connected server says it is a primary.</summary>
    public bool IsSplit { get; }

    /// <summary>Gets whether any server is connected.</summary>
    public bool AnyConnected { get; }

    /// <summary>Gets the connected replicas when no writable primary is connected at all; empty otherwise.</summary>
    public IReadOnlyList<EndPoint> OnlyReplicas { get; }

    /// <summary>Reads the topology from the multiplexer's servers.</summary>
    /// <param name="multiplexer">The multiplexer.</param>
    /// <param name="without">A node to leave out, as if it were disconnected (to ask whether the state needs it).</param>
    public static RedisTopology Of(IConnectionMultiplexer multiplexer, EndPoint? without = null)
    {
        // Sentinels hold no state: a server of theirs is no primary.
        var connected = multiplexer.GetServers()
            .Where(server => server.IsConnected && server.ServerType != ServerType.Sentinel && !Equals(server.EndPoint, without))
            .ToList();
        var primaries = connected.Where(server => !server.IsReplica).ToList();
        var onlyReplicas = primaries.Count == 0 ? connected.Select(server => server.EndPoint).ToList() : [];
        var clusterConfiguration = connected
            .Where(server => server.ServerType == ServerType.Cluster)
            .Select(server => server.ClusterConfiguration)
            .FirstOrDefault(configuration => configuration is not null);
        if (clusterConfiguration is null)
        {
            return new RedisTopology(primaries, primaries.Count == 1, connected.Count > 0, onlyReplicas, isSplit: primaries.Count > 1);
        }

        var owners = clusterConfiguration.Nodes.Where(node => !node.IsReplica && node.Slots.Count > 0).ToList();
        var owning = primaries.Where(server => owners.Any(owner => Equals(owner.EndPoint, server.EndPoint))).ToList();
        return new RedisTopology(owning, owners.Count > 0 && owning.Count == owners.Count, connected.Count > 0, onlyReplicas);
    }
}
