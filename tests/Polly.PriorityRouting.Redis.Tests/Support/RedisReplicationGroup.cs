using System.Diagnostics;
using System.Globalization;

namespace Polly.PriorityRouting.Redis.Tests.Support;

/// <summary>
/// A primary and one replica on random loopback ports, optionally watched by three sentinels (quorum 2,
/// <c>down-after-milliseconds</c> 1000), in a temporary directory; started for one test, every process killed after.
/// </summary>
public sealed class RedisReplicationGroup : IDisposable
{
    public const string ServiceName = "mymaster";

    // More than the three sentinels: none can ever see a node objectively down, so none fails over.
    private const int NoFailoverQuorum = 4;
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    // How long Sentinel is given to make a returning old primary a replica before a test does: well within the 30 s the
    // store waits out two nodes that say they are the primary before it declares an outage (RedisRoleCheck.SplitGrace),
    // so that the fallback never turns the return into a second outage, the store's documented answer to a split that
    // lasts. Sentinel, no longer able to fail over (ForbidFailovers), converts it in about 10 s.
    private static readonly TimeSpan DemotionBound = TimeSpan.FromSeconds(20);
    private readonly string _directory = Directory.CreateTempSubdirectory("redis-replication-").FullName;
    private readonly RedisProcess?[] _nodes = new RedisProcess?[2];
    private readonly List<RedisProcess> _sentinels = [];

    public RedisReplicationGroup(bool withSentinels)
    {
        NodePorts = [RedisProcess.GetFreePort(), RedisProcess.GetFreePort()];
        try
        {
            StartNode(0, replicaOf: null);
            StartNode(1, replicaOf: NodePorts[0]);
            WaitUntil(() => RedisProcess.Cli(NodePorts[1], "info", "replication").Contains("master_link_status:up", StringComparison.Ordinal), "the replica is in sync");
            if (withSentinels)
            {
                for (var i = 0; i < 3; i++)
                {
                    _sentinels.Add(StartSentinel(i));
                }

                // Every sentinel knows the replica and the two other sentinels: a failover can be agreed on.
                WaitUntil(
                    () => _sentinels.All(sentinel =>
                    {
                        var master = RedisProcess.Cli(sentinel.Port, "sentinel", "master", ServiceName).Split('\n').Select(line => line.Trim()).ToList();
                        return ValueAfter(master, "num-slaves") == "1" && ValueAfter(master, "num-other-sentinels") == "2";
                    }),
                    "the sentinels know the replica and each other");
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Gets the ports of the first primary (0) and of its replica (1).</summary>
    public IReadOnlyList<int> NodePorts { get; }

    /// <summary>Gets a Sentinel configuration string: the three sentinels and the service name.</summary>
    public string SentinelConfiguration
        => string.Join(",", _sentinels.Select(sentinel => $"127.0.0.1:{sentinel.Port}")) + $",serviceName={ServiceName},connectTimeout=2000";

    /// <summary>Gets a plain configuration string naming both nodes.</summary>
    public string PlainConfiguration => $"127.0.0.1:{NodePorts[0]},127.0.0.1:{NodePorts[1]},connectTimeout=2000";

    public void Kill(int node)
    {
        _nodes[node]?.Dispose();
        _nodes[node] = null;
    }

    /// <summary>Starts a node again on its port: as a primary of nothing, or as a replica of the given port.</summary>
    public void StartNode(int node, int? replicaOf)
    {
        string[] arguments = [.. RedisProcess.NodeArguments(NodePorts[node], _directory)];
        if (replicaOf is { } primary)
        {
            arguments = [.. arguments, "--replicaof", "127.0.0.1", primary.ToString(CultureInfo.InvariantCulture)];
        }

        _nodes[node] = RedisProcess.Start(NodePorts[node], _directory, arguments);
    }

    /// <summary>Promotes a node by hand, as an operator would: <c>REPLICAOF NO ONE</c>.</summary>
    public void PromoteByHand(int node) => RedisProcess.Cli(NodePorts[node], "replicaof", "no", "one");

    /// <summary>
    /// Waits, bounded, until the replica has applied everything the primary wrote so far (its replication offset caught
    /// up). <c>WAIT</c> would not do from another connection: it waits for that connection's own writes only.
    /// </summary>
    public void WaitForReplication(int primary, int replica)
    {
        var written = Offset(RedisProcess.Cli(NodePorts[primary], "info", "replication"), "master_repl_offset:");
        WaitUntil(() => Offset(RedisProcess.Cli(NodePorts[replica], "info", "replication"), "slave_repl_offset:") >= written, $"node {replica} has what node {primary} wrote");

        static long Offset(string info, string field)
            => info.Split('\n').Select(line => line.Trim()).FirstOrDefault(line => line.StartsWith(field, StringComparison.Ordinal)) is { } found &&
               long.TryParse(found.AsSpan(field.Length), NumberStyles.Integer, CultureInfo.InvariantCulture, out var offset)
                ? offset
                : -1;
    }

    /// <summary>Waits, bounded, until the node reports the role.</summary>
    public void WaitForRole(int node, string role)
        => WaitUntil(() => RedisProcess.Cli(NodePorts[node], "role").StartsWith(role, StringComparison.Ordinal), $"node {node} is a {role}");

    private bool IsReplica(int node) => RedisProcess.Cli(NodePorts[node], "role").StartsWith("slave", StringComparison.Ordinal);

    /// <summary>
    /// Waits until the sentinels make a returning old primary a replica of <paramref name="primary"/>; if they have not
    /// within <see cref="DemotionBound"/>, makes it one by hand, as they would. Sentinel converts it only after its own
    /// periods (an instance's INFO every 10 s, then a wait of its publish periods before it reconfigures a node that
    /// claims to be a primary); what a test checks is the store while two nodes claim to be primaries and after one
    /// stops, not how long Sentinel takes. Returns whether Sentinel did it.
    /// </summary>
    /// <remarks>
    /// A node that never became a replica within 30 s was, in the runs that lost pins, one the sentinels had promoted
    /// back in a second failover (see <see cref="ForbidFailovers"/>).
    /// </remarks>
    public bool WaitForDemotion(int node, int primary)
    {
        try
        {
            WaitUntil(() => IsReplica(node), $"Sentinel makes node {node} a replica", DemotionBound);
            return true;
        }
        catch (TimeoutException)
        {
            RedisProcess.Cli(NodePorts[node], "replicaof", "127.0.0.1", NodePorts[primary].ToString(CultureInfo.InvariantCulture));
            WaitForRole(node, "slave");
            return false;
        }
    }

    /// <summary>
    /// Lets the sentinels fail over (quorum 2 of 3), as a test does just before it kills the primary. They start unable
    /// to (<see cref="ForbidFailovers"/>).
    /// </summary>
    public void AllowFailover() => SetQuorum(2);

    /// <summary>
    /// Makes the sentinels unable to fail over (a quorum of 4, more than there are sentinels: no node is ever objectively
    /// down), while they still watch the nodes and make a returning old primary a replica. A test wants the one failover
    /// it causes: on a loaded machine a sentinel (<c>down-after-milliseconds</c> 1000) takes a primary that stalls a
    /// second for dead, and failed over before the kill, or after it to the returning old primary — which, empty, then
    /// replaced the data of the primary it followed: acknowledged pins lost by Redis, as asynchronous replication allows,
    /// not by the store.
    /// </summary>
    public void ForbidFailovers() => SetQuorum(NoFailoverQuorum);

    /// <summary>Waits, bounded, until every sentinel names the node as the primary.</summary>
    public void WaitForSentinelsToName(int node)
        => WaitUntil(
            () => _sentinels.All(sentinel => RedisProcess.Cli(sentinel.Port, "sentinel", "get-master-addr-by-name", ServiceName)
                .Contains(NodePorts[node].ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal)),
            $"the sentinels name node {node} the primary");

    public void Dispose()
    {
        foreach (var process in _sentinels.Concat(_nodes).OfType<RedisProcess>())
        {
            process.Dispose();
        }

        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // A temporary directory left behind is harmless.
        }
    }

    private RedisProcess StartSentinel(int index)
    {
        var port = RedisProcess.GetFreePort();
        var file = Path.Combine(_directory, $"sentinel-{index}.conf");
        File.WriteAllText(file, string.Join('\n',
            $"port {port}",
            "bind 127.0.0.1",
            $"dir {_directory}",
            $"sentinel monitor {ServiceName} 127.0.0.1 {NodePorts[0]} {NoFailoverQuorum}",
            $"sentinel down-after-milliseconds {ServiceName} 1000",
            $"sentinel failover-timeout {ServiceName} 5000",
            $"sentinel parallel-syncs {ServiceName} 1",
            string.Empty));
        return RedisProcess.Start(port, _directory, file, "--sentinel");
    }

    private void SetQuorum(int quorum)
    {
        foreach (var sentinel in _sentinels)
        {
            var answer = RedisProcess.Cli(sentinel.Port, "sentinel", "set", ServiceName, "quorum", quorum.ToString(CultureInfo.InvariantCulture));
            if (!answer.StartsWith("OK", StringComparison.Ordinal))
            {
                throw new InvalidOperationException($"Sentinel on {sentinel.Port} refused quorum {quorum}: {answer}");
            }
        }
    }

    private static string? ValueAfter(List<string> lines, string name)
    {
        var index = lines.IndexOf(name);
        return index >= 0 && index + 1 < lines.Count ? lines[index + 1] : null;
    }

    private static void WaitUntil(Func<bool> condition, string description, TimeSpan? bound = null)
    {
        var limit = bound ?? Bound;
        var waited = Stopwatch.StartNew();
        while (!condition())
        {
            if (waited.Elapsed > limit)
            {
                throw new TimeoutException($"Not within {limit}: {description}.");
            }

            Thread.Sleep(50);
        }
    }
}
