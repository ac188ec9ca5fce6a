using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Polly.PriorityRouting.Redis.Tests.Support;

/// <summary>
/// A real redis-server on a random free loopback port, started for one test class, that a test can kill and restart on
/// the same port.
/// </summary>
public sealed class RedisServerFixture : IDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(10);
    private readonly string _executable;
    private Process? _process;

    public RedisServerFixture()
    {
        _executable = RedisExecutable.Find("redis-server");
        Port = GetFreePort();
        Start();
    }

    public int Port { get; }

    public bool IsRunning => _process is { HasExited: false };

    /// <summary>
    /// Gets the configuration string of the server. Command timeouts keep their defaults (5 s): on a loaded machine a
    /// shorter one turns a slow answer into a spurious outage.
    /// </summary>
    public string Configuration => $"127.0.0.1:{Port},connectTimeout=2000";

    public void Start()
    {
        var startInfo = new ProcessStartInfo(_executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[] { "--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no" })
        {
            startInfo.ArgumentList.Add(argument);
        }

        _process = Process.Start(startInfo) ?? throw new InvalidOperationException("redis-server did not start.");
        _process.OutputDataReceived += static (_, _) => { };
        _process.ErrorDataReceived += static (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();

        var stopwatch = Stopwatch.StartNew();
        while (!AcceptsConnections())
        {
            if (_process.HasExited || stopwatch.Elapsed > StartTimeout)
            {
                throw new InvalidOperationException($"redis-server did not listen on 127.0.0.1:{Port} within {StartTimeout}.");
            }

            Thread.Sleep(20);
        }
    }

    public void Kill()
    {
        if (_process is { } process)
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            process.Dispose();
            _process = null;
        }
    }

    /// <summary>Freezes the server (SIGSTOP): connections stay open, nothing is answered — a hung Redis.</summary>
    public void Pause() => Signal("STOP");

    /// <summary>Lets a frozen server go on (SIGCONT).</summary>
    public void Resume() => Signal("CONT");

    public void Dispose()
    {
        if (IsRunning)
        {
            Resume();
        }

        Kill();
    }

    private void Signal(string signal)
    {
        using var kill = Process.Start("kill", ["-" + signal, _process!.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    private bool AcceptsConnections()
    {
        try
        {
            using var client = new TcpClient();
            client.Connect(IPAddress.Loopback, Port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static int GetFreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
