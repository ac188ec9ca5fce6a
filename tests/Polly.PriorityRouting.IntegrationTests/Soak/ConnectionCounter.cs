using System.Net;
using System.Net.Sockets;

namespace Polly.PriorityRouting.IntegrationTests.Soak;

/// <summary>
/// Counts the client's open connections: a <see cref="SocketsHttpHandler.ConnectCallback"/> whose streams decrement
/// the count when the pool disposes them. A response nobody disposed keeps its connection busy, so the count would
/// never return to zero. Also refuses to connect anywhere but loopback.
/// </summary>
internal sealed class ConnectionCounter
{
    private int _open;
    private int _opened;

    public int Open => Volatile.Read(ref _open);

    public int Opened => Volatile.Read(ref _opened);

    public SocketsHttpHandler CreateHandler(TimeSpan idleTimeout) => new()
    {
        PooledConnectionIdleTimeout = idleTimeout,
        ConnectCallback = ConnectAsync,
    };

    /// <summary>Waits, bounded, for every connection to be closed; returns the count left open.</summary>
    public async Task<int> WaitForZeroAsync(TimeSpan limit)
    {
        var deadline = DateTime.UtcNow + limit;
        while (Open > 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }

        return Open;
    }

    private async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        if (!IPAddress.TryParse(context.DnsEndPoint.Host, out var address) || !IPAddress.IsLoopback(address))
        {
            throw new InvalidOperationException($"The soak only talks to loopback, not to {context.DnsEndPoint.Host}.");
        }

        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(new IPEndPoint(address, context.DnsEndPoint.Port), cancellationToken);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        Interlocked.Increment(ref _opened);
        Interlocked.Increment(ref _open);
        return new CountedStream(socket, this);
    }

    private sealed class CountedStream(Socket socket, ConnectionCounter counter) : NetworkStream(socket, ownsSocket: true)
    {
        private int _disposed;

        protected override void Dispose(bool disposing)
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                Interlocked.Decrement(ref counter._open);
            }

            base.Dispose(disposing);
        }
    }
}
