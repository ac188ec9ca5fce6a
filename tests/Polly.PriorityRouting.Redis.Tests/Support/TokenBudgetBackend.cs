using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Polly.PriorityRouting.Redis.Tests.Support;

/// <summary>
/// A loopback deployment that counts tokens as Azure OpenAI does: a request's cost (its <see cref="CostHeader"/>) is
/// taken from a budget of <see cref="Limit"/> tokens per fixed window when the request is admitted — or refused with a
/// 429 and the time until the window ends — and the answer comes <see cref="AnswerDelay"/> later, reporting the budget
/// as of the admission (remaining, limit, reset measured from the admission). Without a limit it admits everything and
/// reports nothing. The first window starts with the first request that carries a cost, so that a test's own set-up
/// time never moves a window's end into its requests; a request without one is a warm-up (<see cref="WarmUpAsync"/>).
/// </summary>
internal sealed class TokenBudgetBackend : IAsyncDisposable
{
    public const string CostHeader = "x-test-cost";

    private readonly WebApplication _app;
    private readonly object _gate = new();
    private DateTimeOffset? _started;
    private long _windowIndex;
    private long _consumed;
    private int _admitted;
    private int _throttled;

    private TokenBudgetBackend(WebApplication app, long? limit, TimeSpan window, TimeSpan answerDelay)
    {
        _app = app;
        Limit = limit;
        Window = window;
        AnswerDelay = answerDelay;
        app.Run(AnswerAsync);
    }

    public long? Limit { get; }

    public TimeSpan Window { get; }

    public TimeSpan AnswerDelay { get; }

    /// <summary>Gets how many requests were admitted.</summary>
    public int Admitted => Volatile.Read(ref _admitted);

    /// <summary>Gets how many requests were answered 429.</summary>
    public int Throttled => Volatile.Read(ref _throttled);

    public Uri BaseAddress => new(_app.Urls.Single());

    public static async Task<TokenBudgetBackend> StartAsync(long? limit, TimeSpan window, TimeSpan answerDelay)
    {
        var app = LoopbackServer.Create();
        var backend = new TokenBudgetBackend(app, limit, window, answerDelay);
        await LoopbackServer.StartAsync(app);
        return backend;
    }

    /// <summary>
    /// Opens <paramref name="client"/>'s connection to this backend (and runs both ends once) with a request that is
    /// neither counted nor reported: the resets the answers report count from when a request was sent, and the first
    /// request on a new connection arrives late by the connection's set-up, which would date its window early.
    /// </summary>
    public static async Task WarmUpAsync(HttpClient client)
    {
        using var response = await client.PostAsync(RoutedHost.AnyPath, new StringContent("{}"));
        response.EnsureSuccessStatusCode();
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private async Task AnswerAsync(HttpContext context)
    {
        if (!context.Request.Headers.ContainsKey(CostHeader))
        {
            await context.Response.WriteAsync("ok");
            return;
        }

        var cost = long.TryParse(context.Request.Headers[CostHeader], NumberStyles.Integer, CultureInfo.InvariantCulture, out var parsed) ? parsed : 0;
        if (Limit is not { } limit)
        {
            Interlocked.Increment(ref _admitted);
            await Task.Delay(AnswerDelay);
            await context.Response.WriteAsync("ok");
            return;
        }

        long remaining;
        TimeSpan reset;
        lock (_gate)
        {
            var now = DateTimeOffset.UtcNow;
            _started ??= now;
            var elapsed = now - _started.Value;
            var index = (long)(elapsed / Window);
            if (index != _windowIndex)
            {
                (_windowIndex, _consumed) = (index, 0);
            }

            reset = (Window * (index + 1)) - elapsed;
            if (_consumed + cost > limit)
            {
                Interlocked.Increment(ref _throttled);
                context.Response.StatusCode = StatusCodes.Status429TooManyRequests;
                context.Response.Headers["retry-after-ms"] = ((long)Math.Ceiling(reset.TotalMilliseconds)).ToString(CultureInfo.InvariantCulture);
                return;
            }

            _consumed += cost;
            remaining = limit - _consumed;
            Interlocked.Increment(ref _admitted);
        }

        context.Response.Headers["x-ratelimit-remaining-tokens"] = remaining.ToString(CultureInfo.InvariantCulture);
        context.Response.Headers["x-ratelimit-limit-tokens"] = limit.ToString(CultureInfo.InvariantCulture);
        context.Response.Headers["x-ratelimit-reset-tokens"] = ((long)Math.Ceiling(reset.TotalMilliseconds)).ToString(CultureInfo.InvariantCulture) + "ms";
        await Task.Delay(AnswerDelay);
        await context.Response.WriteAsync("ok");
    }
}
