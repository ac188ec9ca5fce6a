using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Polly.PriorityRouting.Redis.Tests.Support;

/// <summary>
/// A real Redis Cluster of three primaries (no replicas) on random loopback ports, started once for a test class; a
/// test can kill one node and start it again on the same port with the same cluster configuration file.
/// </summary>
/// <remarks>
/// <c>cluster-require-full-coverage no</c>: the live shards keep serving while one node is down, which is the case the
/// store must handle (with the default, the whole cluster refuses commands after the node timeout, a plain outage).
/// </remarks>
public sealed class RedisClusterFixture : IDisposable
{
    private const int NodeCount = 3;
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(20);
    private readonly string _server = RedisExecutable.Find("redis-server");
    private readonly string _cli = RedisExecutable.Find("redis-cli");
    private readonly string _directory = Directory.CreateTempSubdirectory("redis-cluster-").FullName;
    private readonly Process?[] _processes = new Process?[NodeCount];

    public RedisClusterFixture()
    {
        Ports = [.. Enumerable.Range(0, NodeCount).Select(_ => GetFreePort())];
        try
        {
            for (var node = 0; node < NodeCount; node++)
            {
                Start(node);
            }

            var create = RunCli(["--cluster", "create", .. Ports.Select(port => $"127.0.0.1:{port}"), "--cluster-replicas", "0", "--cluster-yes"]);
            if (create.ExitCode != 0)
            {
                throw new InvalidOperationException($"redis-cli --cluster create failed: {create.Output}");
            }

            WaitUntilClusterIsOk();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public IReadOnlyList<int> Ports { get; }

    /// <summary>Gets the configuration string naming every node.</summary>
    public string Configuration => string.Join(",", Ports.Select(port => $"127.0.0.1:{port}")) + ",connectTimeout=2000";

    public void Start(int node)
    {
        var port = Ports[node].ToString(CultureInfo.InvariantCulture);
        var startInfo = new ProcessStartInfo(_server)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = _directory,
        };
        foreach (var argument in new[]
        {
            "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", _directory,
            "--cluster-enabled", "yes", "--cluster-config-file", $"nodes-{port}.conf", "--cluster-node-timeout", "5000",
            "--cluster-require-full-coverage", "no",
        })
        {
            startInfo.ArgumentList.Add(argument);
        }

        var process = Process.Start(startInfo) ?? throw new InvalidOperationException("redis-server did not start.");
        process.OutputDataReceived += static (_, _) => { };
        process.ErrorDataReceived += static (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _processes[node] = process;

        var waited = Stopwatch.StartNew();
        while (!AcceptsConnections(Ports[node]))
        {
            if (process.HasExited || waited.Elapsed > StartTimeout)
            {
                throw new InvalidOperationException($"redis-server did not listen on 127.0.0.1:{port} within {StartTimeout}.");
            }

            Thread.Sleep(20);
        }
    }

    public void Kill(int node)
    {
        if (_processes[node] is { } process)
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            process.Dispose();
            _processes[node] = null;
        }
    }

    /// <summary>
    /// Waits, bounded, until every node reports <c>cluster_state:ok</c>.
    /// </summary>
    public void WaitUntilClusterIsOk()
    {
        var waited = Stopwatch.StartNew();
        while (!Ports.All(port => RunCli(["-p", port.ToString(CultureInfo.InvariantCulture), "cluster", "info"]).Output.Contains("cluster_state:ok", StringComparison.Ordinal)))
        {
            if (waited.Elapsed > StartTimeout)
            {
                throw new InvalidOperationException($"The cluster did not reach cluster_state:ok within {StartTimeout}.");
            }

            Thread.Sleep(50);
        }
    }

    public void Dispose()
    {
        for (var node = 0; node < NodeCount; node++)
        {
            Kill(node);
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

    private (int ExitCode, string Output) RunCli(IEnumerable<string> arguments)
    {
        var startInfo = new ProcessStartInfo(_cli)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        using var process = Process.Start(startInfo) ?? throw new InvalidOperationException("redis-cli did not start.");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, output.Result + error);
    }

    private static bool AcceptsConnections(int port)
    {
        try
        {
            using var client = new TcpClient();
            client.Connect(IPAddress.Loopback, port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static int GetFreePort()
    {
        // Cluster nodes also listen on port + 10000 (the cluster bus): pick ports whose bus port is free too.
        while (true)
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            if (port + 10000 <= IPEndPoint.MaxPort && IsFree(port + 10000))
            {
                return port;
            }
        }
    }

    private static bool IsFree(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
