using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Polly.PriorityRouting.Redis.Tests.Support;

/// <summary>
/// One redis-server process (a node or, with <c>--sentinel</c>, a sentinel) on a loopback port, started by a test and
/// killed by it; plus redis-cli against any port.
/// </summary>
public sealed class RedisProcess : IDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(20);
    private Process? _process;

    private RedisProcess(int port, Process process)
    {
        Port = port;
        _process = process;
    }

    public int Port { get; }

    public bool IsRunning => _process is { HasExited: false };

    /// <summary>Starts redis-server with the arguments and waits, bounded, until it accepts connections on the port.</summary>
    public static RedisProcess Start(int port, string workingDirectory, params string[] arguments)
    {
        var startInfo = new ProcessStartInfo(RedisExecutable.Find("redis-server"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        var process = Process.Start(startInfo) ?? throw new InvalidOperationException("redis-server did not start.");
        process.OutputDataReceived += static (_, _) => { };
        process.ErrorDataReceived += static (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var started = new RedisProcess(port, process);
        var waited = Stopwatch.StartNew();
        while (!AcceptsConnections(port))
        {
            if (process.HasExited || waited.Elapsed > StartTimeout)
            {
                started.Dispose();
                throw new InvalidOperationException($"redis-server did not listen on 127.0.0.1:{port} within {StartTimeout}.");
            }

            Thread.Sleep(20);
        }

        return started;
    }

    /// <summary>The arguments of a plain node on the port, without persistence, that replicates at once.</summary>
    public static string[] NodeArguments(int port, string directory) =>
    [
        "--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", directory, "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
    ];

    /// <summary>Runs redis-cli against the port and returns what it printed.</summary>
    public static string Cli(int port, params string[] arguments)
    {
        var startInfo = new ProcessStartInfo(RedisExecutable.Find("redis-cli"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        startInfo.ArgumentList.Add("-p");
        startInfo.ArgumentList.Add(port.ToString(CultureInfo.InvariantCulture));
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        using var process = Process.Start(startInfo) ?? throw new InvalidOperationException("redis-cli did not start.");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        return output.Result + error;
    }

    public static int GetFreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Kills the process (SIGKILL): its connections break at once, as in a crash.</summary>
    public void Dispose()
    {
        if (_process is { } process)
        {
            _process = null;
            try
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit();
            }
            catch (InvalidOperationException)
            {
                // Already gone.
            }

            process.Dispose();
        }
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
}
