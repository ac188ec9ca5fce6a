using System.Diagnostics;
using System.Globalization;

namespace Polly.PriorityRouting.Redis.Tests.Support;

/// <summary>
/// A Redis Cluster of three primaries, each with one replica (six nodes, <c>cluster-node-timeout</c> 1000), on random
/// loopback ports in a temporary directory; started for one test, every process killed after. No replica fails over
/// until a test allows it (<see cref="AllowFailover"/>): on a loaded machine a primary that stalls a second looks dead,
/// and a failover the test did not cause may lose what the last writes acknowledged (asynchronous replication).
/// </summary>
public sealed class RedisClusterWithReplicas : IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private readonly string _directory = Directory.CreateTempSubdirectory("redis-cluster-replicas-").FullName;
    private readonly RedisProcess?[] _nodes = new RedisProcess?[6];

    public RedisClusterWithReplicas()
    {
        Ports = [.. Enumerable.Range(0, _nodes.Length).Select(_ => FreePortWithFreeBus())];
        try
        {
            for (var node = 0; node < _nodes.Length; node++)
            {
                var port = Ports[node].ToString(CultureInfo.InvariantCulture);
                _nodes[node] = RedisProcess.Start(Ports[node], _directory,
                [
                    .. RedisProcess.NodeArguments(Ports[node], _directory),
                    "--cluster-enabled", "yes", "--cluster-config-file", $"nodes-{port}.conf", "--cluster-node-timeout", "1000",
                    "--cluster-require-full-coverage", "no", "--cluster-replica-no-failover", "yes",
                ]);
            }

            var create = RedisProcess.Cli(Ports[0], ["--cluster", "create", .. Ports.Select(port => $"127.0.0.1:{port}"), "--cluster-replicas", "1", "--cluster-yes"]);
            if (!create.Contains("[OK] All 16384 slots covered", StringComparison.Ordinal))
            {
                throw new InvalidOperationException($"redis-cli --cluster create failed: {create}");
            }

            WaitUntil(
                () => Ports.All(port => RedisProcess.Cli(port, "cluster", "info").Contains("cluster_state:ok", StringComparison.Ordinal))
                    && Ports.Count(port => RedisProcess.Cli(port, "info", "replication").Contains("master_link_status:up", StringComparison.Ordinal)) == 3,
                "the cluster is ok and every replica in sync");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public IReadOnlyList<int> Ports { get; }

    public string Configuration => string.Join(",", Ports.Select(port => $"127.0.0.1:{port}")) + ",connectTimeout=2000";

    /// <summary>Returns a node that is a primary now, and the node that replicates it.</summary>
    public (int Primary, int Replica) APrimaryAndItsReplica()
    {
        for (var node = 0; node < Ports.Count; node++)
        {
            var role = RedisProcess.Cli(Ports[node], "role").Split('\n').Select(line => line.Trim()).ToList();
            if (role.Count > 2 && role[0] == "slave")
            {
                var primaryPort = int.Parse(role[2], CultureInfo.InvariantCulture);
                return (Ports.ToList().IndexOf(primaryPort), node);
            }
        }

        throw new InvalidOperationException("No replica found.");
    }

    /// <summary>Lets the replica fail over when its primary is down, as a test does just before it kills that primary.</summary>
    public void AllowFailover(int replica)
    {
        var answer = RedisProcess.Cli(Ports[replica], "config", "set", "cluster-replica-no-failover", "no");
        if (!answer.StartsWith("OK", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"Node {replica} refused to allow a failover: {answer}");
        }
    }

    public void Kill(int node)
    {
        _nodes[node]?.Dispose();
        _nodes[node] = null;
    }

    /// <summary>Waits, bounded, until the node is a primary (the cluster promoted it).</summary>
    public void WaitForPromotion(int node)
        => WaitUntil(() => RedisProcess.Cli(Ports[node], "role").StartsWith("master", StringComparison.Ordinal), $"node {node} is promoted");

    public void Dispose()
    {
        foreach (var node in _nodes.OfType<RedisProcess>())
        {
            node.Dispose();
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

    private static int FreePortWithFreeBus()
    {
        // A cluster node also listens on port + 10000 (the cluster bus).
        while (true)
        {
            var port = RedisProcess.GetFreePort();
            if (port + 10000 > 65535)
            {
                continue;
            }

            try
            {
                using var bus = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, port + 10000);
                bus.Start();
                return port;
            }
            catch (System.Net.Sockets.SocketException)
            {
                // Taken: try another.
            }
        }
    }

    private static void WaitUntil(Func<bool> condition, string description)
    {
        var waited = Stopwatch.StartNew();
        while (!condition())
        {
            if (waited.Elapsed > Bound)
            {
                throw new TimeoutException($"Not within {Bound}: {description}.");
            }

            Thread.Sleep(50);
        }
    }
}
