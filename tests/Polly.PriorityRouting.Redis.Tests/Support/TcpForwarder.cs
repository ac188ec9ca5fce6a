using System.Net;
using System.Net.Sockets;

namespace Polly.PriorityRouting.Redis.Tests.Support;

/// <summary>
/// A managed service's DNS name, simulated on loopback: a port that forwards every connection to the node it currently
/// points at. <see cref="Repoint"/> moves it, as the service moves its name to a promoted replica, and closes the
/// connections it carried.
/// </summary>
public sealed class TcpForwarder : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _gate = new();
    private readonly List<TcpClient> _open = [];
    private int _targetPort;

    public TcpForwarder(int targetPort)
    {
        _targetPort = targetPort;
        _listener.Start();
        _ = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public void Repoint(int targetPort)
    {
        Volatile.Write(ref _targetPort, targetPort);
        CloseAll();
    }

    public void Dispose()
    {
        _stopping.Cancel();
        _listener.Stop();
        CloseAll();
        _stopping.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stopping.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            _ = ForwardAsync(client);
        }
    }

    private async Task ForwardAsync(TcpClient client)
    {
        var upstream = new TcpClient();
        Track(client);
        Track(upstream);
        try
        {
            await upstream.ConnectAsync(IPAddress.Loopback, Volatile.Read(ref _targetPort), _stopping.Token);
            using var cancel = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            var down = client.GetStream();
            var up = upstream.GetStream();

            // Either direction ending ends both, as a dead node ends its connections.
            await Task.WhenAny(down.CopyToAsync(up, cancel.Token), up.CopyToAsync(down, cancel.Token));
            await cancel.CancelAsync();
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // The node is gone or the connection was closed: the client sees its connection end.
        }
        finally
        {
            Close(client);
            Close(upstream);
        }
    }

    private void Track(TcpClient client)
    {
        lock (_gate)
        {
            _open.Add(client);
        }
    }

    private void Close(TcpClient client)
    {
        lock (_gate)
        {
            _open.Remove(client);
        }

        client.Dispose();
    }

    private void CloseAll()
    {
        TcpClient[] open;
        lock (_gate)
        {
            open = [.. _open];
            _open.Clear();
        }

        foreach (var client in open)
        {
            client.Dispose();
        }
    }
}
