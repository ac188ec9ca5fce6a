using System.Net;
using System.Net.Sockets;
using System.Text;

namespace PackageSmoke;

/// <summary>
/// A minimal HTTP/1.1 server on 127.0.0.1 and a port the OS picks: reads one request per connection, answers what
/// <see cref="Answer"/> says, closes. Plain sockets, so the smoke test needs no ASP.NET Core on any target.
/// </summary>
internal sealed class LoopbackBackend : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private int _hits;

    public LoopbackBackend(string name)
    {
        Name = name;
        _listener.Start();
        Address = new Uri($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/");
        _ = Task.Run(AcceptAsync);
    }

    public string Name { get; }

    public Uri Address { get; }

    public int Hits => Volatile.Read(ref _hits);

    /// <summary>The status and extra header lines of the next answers.</summary>
    public (int Status, string Headers) Answer { get; set; } = (200, string.Empty);

    public List<string> RequestLines { get; } = [];

    /// <summary>When set, the body of a 200 answer, sent as JSON (a chat completion for the SDK path).</summary>
    public string? Json { get; set; }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            _ = Task.Run(() => ServeAsync(client));
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        using (client)
        {
            var stream = client.GetStream();
            var head = await ReadHeadAsync(stream);
            var lines = head.Split("\r\n");
            var length = lines.Select(l => l.Split(':', 2)).Where(p => p.Length == 2 && p[0].Trim().Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                .Select(p => int.Parse(p[1].Trim(), System.Globalization.CultureInfo.InvariantCulture)).FirstOrDefault();
            var body = new byte[length];
            await stream.ReadExactlyAsync(body);
            lock (RequestLines)
            {
                RequestLines.Add(lines[0]);
            }

            Interlocked.Increment(ref _hits);
            var (status, headers) = Answer;
            var json = Json;
            var content = Encoding.UTF8.GetBytes(status == 200 ? json ?? $"hello from {Name}" : "{\"error\":{\"message\":\"busy\",\"type\":\"requests\",\"param\":null,\"code\":\"429\"}}");
            var contentType = status == 200 && json is null ? "text/plain" : "application/json";
            var response = $"HTTP/1.1 {status} {(status == 200 ? "OK" : "Too Many Requests")}\r\nContent-Type: {contentType}\r\nContent-Length: {content.Length}\r\nConnection: close\r\n{headers}\r\n";
            await stream.WriteAsync(Encoding.ASCII.GetBytes(response).Concat(content).ToArray());
        }
    }

    private static async Task<string> ReadHeadAsync(NetworkStream stream)
    {
        var head = new List<byte>();
        var one = new byte[1];
        while (!(head.Count >= 4 && head[^4] == '\r' && head[^3] == '\n' && head[^2] == '\r' && head[^1] == '\n'))
        {
            if (await stream.ReadAsync(one) == 0)
            {
                break;
            }

            head.Add(one[0]);
        }

        return Encoding.ASCII.GetString([.. head]);
    }
}
