using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis;

/// <summary>
/// The store's connection to Redis and whether the shared state may be written through it now: hands the multiplexer
/// over between the background start and disposal, and turns connection events into reports to its
/// <see cref="Outage"/> state and requests for a synchronization.
/// </summary>
/// <remarks>
/// Nothing is written to Redis while two nodes say they are the primary (<see cref="Writable"/>): what is learned is
/// kept, and the synchronization that shares the state publishes it once one of them is a replica again.
/// </remarks>
internal sealed class RedisConnection : IDisposable, IAsyncDisposable
{
    private readonly Task<IConnectionMultiplexer> _connecting;
    private readonly bool _ownsConnection;

    // Guards the multiplexer handover.
    private readonly object _gate = new();

    private IConnectionMultiplexer? _multiplexer;

    private Action? _synchronize;
    private Func<System.Net.EndPoint?, bool>? _isSpare;
    private bool _disposed;
    private int _restorations;

    public RedisConnection(Task<IConnectionMultiplexer> connecting, bool ownsConnection, ILogger logger)
    {
        _connecting = connecting;
        _ownsConnection = ownsConnection;
        Outage = new RedisOutageState(CurrentTopology, Synchronize, logger);
    }

    /// <summary>Gets the multiplexer once connected in the background, or <see langword="null"/>.</summary>
    public IConnectionMultiplexer? Multiplexer => Volatile.Read(ref _multiplexer);

    /// <summary>Gets whether the state is shared right now, and where every failure is reported.</summary>
    public RedisOutageState Outage { get; }

    /// <summary>Gets how many connection restorations were reported (a test hook).</summary>
    public int RestorationCount => Volatile.Read(ref _restorations);

    /// <summary>
    /// Gets the <c>channelPrefix</c> of the multiplexer's configuration: the script publishes on the raw channel name,
    /// so it must add the prefix the multiplexer adds to the subscription.
    /// </summary>
    public static string ChannelPrefixOf(IConnectionMultiplexer multiplexer)
    {
        try
        {
            return (string?)ConfigurationOptions.Parse(multiplexer.Configuration).ChannelPrefix ?? string.Empty;
        }
        catch (ArgumentException)
        {
            return string.Empty;
        }
    }

    /// <summary>
    /// Waits for the background connection and hooks its events; returns <see langword="null"/> when it failed for good
    /// or the store was disposed meanwhile.
    /// </summary>
    /// <param name="synchronize">
    /// Called on every restored connection, on every configuration change (a failover), and when the state becomes
    /// unshared (so that the synchronization, not the requests, finds out when Redis answers again); on the thread that
    /// raises it.
    /// </param>
    /// <param name="isSpare">
    /// Tells whether a node is one the shared state does not use right now (a replica, a dead primary that a failover
    /// replaced, back as a replica): its lost connection is no outage.
    /// </param>
    public async Task<IConnectionMultiplexer?> ConnectAsync(Action synchronize, Func<System.Net.EndPoint?, bool> isSpare)
    {
        IConnectionMultiplexer multiplexer;
        try
        {
            multiplexer = await _connecting.ConfigureAwait(false);
        }
        catch (Exception e)
        {
            // With AbortOnConnectFail=false this is rare (e.g. an unresolvable name): the store stays local for good.
            Outage.ReportLastingFailure(e);
            return null;
        }

        lock (_gate)
        {
            if (!_disposed)
            {
                Volatile.Write(ref _synchronize, synchronize);
                _isSpare = isSpare;
                multiplexer.ConnectionFailed += OnConnectionFailed;
                multiplexer.ConnectionRestored += OnConnectionRestored;
                multiplexer.ConfigurationChanged += OnConfigurationChanged;
                Volatile.Write(ref _multiplexer, multiplexer);
                return multiplexer;
            }
        }

        // Disposed while connecting: nobody else will release it.
        if (_ownsConnection)
        {
            await multiplexer.DisposeAsync().ConfigureAwait(false);
        }

        return null;
    }

    /// <summary>
    /// Returns the multiplexer for a request's own Redis work (a pin, a lookup, a reservation): only while the state is
    /// shared, since a request must not wait on a Redis that just failed — from the first failure until "shared again"
    /// the caller keeps or decides locally — and then as <see cref="Writable"/>.
    /// </summary>
    public IConnectionMultiplexer? WritableWhileShared() => Outage.IsUnshared ? null : Writable();

    /// <summary>
    /// Returns the multiplexer when the shared state may be written or read now: connected, and no split — without a
    /// cluster, two connected servers saying they are primaries (an old primary back before Sentinel made it a replica),
    /// where StackExchange.Redis may send the write to the node whose data is about to be replaced. Otherwise returns
    /// <see langword="null"/>, and the caller keeps what it would write for the synchronization to publish. A shard without
    /// a primary does not stop the others: a write to it fails, and that failure is reported.
    /// </summary>
    public IConnectionMultiplexer? Writable()
    {
        if (Multiplexer is not { } multiplexer)
        {
            // Still connecting: the start synchronizes.
            return null;
        }

        if (!multiplexer.IsConnected)
        {
            Outage.ReportFailure(null);
            return null;
        }

        if (IsSplit(multiplexer))
        {
            // No failure yet: the synchronization waits for the returning node to become a replica, then publishes.
            Outage.BeginUnshared();
            return null;
        }

        return multiplexer;
    }

    private static bool IsSplit(IConnectionMultiplexer multiplexer)
    {
        try
        {
            return RedisTopology.Of(multiplexer).IsSplit;
        }
        catch (Exception e) when (e is RedisException or ObjectDisposedException)
        {
            return false;
        }
    }

    /// <summary>Unhooks the events and closes an owned connection synchronously; never waits on asynchronous work.</summary>
    public void Dispose()
    {
        if (TakeForDisposal() is { } multiplexer && _ownsConnection)
        {
            multiplexer.Dispose();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (TakeForDisposal() is { } multiplexer && _ownsConnection)
        {
            await multiplexer.DisposeAsync().ConfigureAwait(false);
        }
    }

    private IConnectionMultiplexer? TakeForDisposal()
    {
        IConnectionMultiplexer? multiplexer;
        lock (_gate)
        {
            if (_disposed)
            {
                return null;
            }

            _disposed = true;
            multiplexer = _multiplexer;
        }

        Outage.Stop();

        // Still connecting: the background start releases the connection when it completes.
        if (multiplexer is not null)
        {
            multiplexer.ConnectionFailed -= OnConnectionFailed;
            multiplexer.ConnectionRestored -= OnConnectionRestored;
            multiplexer.ConfigurationChanged -= OnConfigurationChanged;
        }

        return multiplexer;
    }

    private void OnConnectionFailed(object? sender, ConnectionFailedEventArgs args)
    {
        if (_isSpare?.Invoke(args.EndPoint) != true)
        {
            Outage.ReportFailure(args.Exception);
        }
    }

    private void OnConnectionRestored(object? sender, ConnectionFailedEventArgs args)
    {
        Synchronize();
        Interlocked.Increment(ref _restorations);
    }

    private void OnConfigurationChanged(object? sender, EndPointEventArgs args) => Synchronize();

    /// <summary>Requests a synchronization once connected; before that, the start synchronizes.</summary>
    private void Synchronize() => Volatile.Read(ref _synchronize)?.Invoke();

    private RedisTopology? CurrentTopology() => Multiplexer is { } multiplexer ? RedisTopology.Of(multiplexer) : null;
}
