using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Polly.PriorityRouting.IntegrationTests.Support;

/// <summary>
/// A real Kestrel server on 127.0.0.1 and a random port that behaves the way the programmed handler says, and records
/// every request it receives (path, query, headers, body).
/// </summary>
internal sealed class FakeBackend : IAsyncDisposable
{
    private readonly WebApplication _app;
    private volatile Func<HttpContext, int, Task> _handler = Ok;
    private int _hits;

    private FakeBackend(WebApplication app, string name)
    {
        _app = app;
        Name = name;
    }

    public string Name { get; }

    public Uri Address { get; private set; } = null!;

    public int Hits => Volatile.Read(ref _hits);

    public ConcurrentQueue<ReceivedRequest> Received { get; } = new();

    public static async Task<FakeBackend> StartAsync(string name)
    {
        var app = LoopbackServer.Create();
        var backend = new FakeBackend(app, name);
        app.Run(backend.HandleAsync);
        backend.Address = await LoopbackServer.StartAsync(app);
        return backend;
    }

    /// <summary>Returns an address on which nothing listens: connections are refused.</summary>
    public static Uri RefusedAddress()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return new Uri($"http://127.0.0.1:{port}/");
    }

    /// <summary>Sets the behaviour; the handler gets the context and the 1-based hit number.</summary>
    public FakeBackend Behave(Func<HttpContext, int, Task> handler)
    {
        _handler = handler;
        return this;
    }

    public FakeBackend Throttle(int retryAfterSeconds) => Behave((context, _) => Status(context, 429, ("Retry-After", retryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture))));

    public static Task Ok(HttpContext context, int hit)
    {
        context.Response.ContentType = "text/plain";
        return context.Response.WriteAsync("ok");
    }

    public static Task Status(HttpContext context, int status, params (string Name, string Value)[] headers)
    {
        context.Response.StatusCode = status;
        foreach (var (name, value) in headers)
        {
            context.Response.Headers[name] = value;
        }

        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync("{\"error\":{\"code\":\"" + status + "\",\"message\":\"from backend\"}}");
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private async Task HandleAsync(HttpContext context)
    {
        var hit = Interlocked.Increment(ref _hits);
        using var reader = new StreamReader(context.Request.Body);
        var body = await reader.ReadToEndAsync(context.RequestAborted);
        Received.Enqueue(new ReceivedRequest(
            context.Request.Method,
            context.Request.Path.Value ?? string.Empty,
            context.Request.QueryString.Value ?? string.Empty,
            context.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase),
            body));
        context.Response.Headers["x-backend"] = Name;
        await _handler(context, hit);
    }
}
