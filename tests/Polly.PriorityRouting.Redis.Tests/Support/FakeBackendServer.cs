using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Polly.PriorityRouting.Redis.Tests.Support;

/// <summary>
/// A real Kestrel server on a random loopback port that counts its hits and answers either 200 or 429 with
/// <c>Retry-After: 30</c>; with <see cref="RemainingTokens"/> set, its 200 answers report a token budget as Azure
/// OpenAI does (that many tokens left of 100,000, refilled in 60 s).
/// </summary>
public sealed class FakeBackendServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _hits;

    private FakeBackendServer(WebApplication app, bool throttles)
    {
        _app = app;
        Throttles = throttles;
        app.Run(context =>
        {
            Interlocked.Increment(ref _hits);
            if (Throttles)
            {
                context.Response.StatusCode = StatusCodes.Status429TooManyRequests;
                context.Response.Headers.RetryAfter = "30";
                return Task.CompletedTask;
            }

            if (RemainingTokens is { } remaining)
            {
                context.Response.Headers["x-ratelimit-remaining-tokens"] = remaining.ToString(System.Globalization.CultureInfo.InvariantCulture);
                context.Response.Headers["x-ratelimit-limit-tokens"] = "100000";
                context.Response.Headers["x-ratelimit-reset-tokens"] = "60s";
            }

            return context.Response.WriteAsync("ok");
        });
    }

    public bool Throttles { get; set; }

    public long? RemainingTokens { get; set; }

    public int Hits => Volatile.Read(ref _hits);

    public Uri BaseAddress => new(_app.Urls.Single());

    public static async Task<FakeBackendServer> StartAsync(bool throttles)
    {
        var app = LoopbackServer.Create();
        var server = new FakeBackendServer(app, throttles);
        await LoopbackServer.StartAsync(app);
        return server;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
