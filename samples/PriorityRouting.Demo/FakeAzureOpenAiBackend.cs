using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using PriorityRouting.Samples;

namespace PriorityRouting.Demo;

/// <summary>
/// A local stand-in for one Azure OpenAI deployment: Kestrel on 127.0.0.1 and a random port, a token bucket for its
/// requests-per-minute quota, and the 429 headers the real service sends when the quota is spent.
/// </summary>
internal sealed class FakeAzureOpenAiBackend : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly TokenBucketRateLimiter _limiter;

    private FakeAzureOpenAiBackend(FakeBackendSpec spec, WebApplication app, TokenBucketRateLimiter limiter, BackendStatistics statistics)
    {
        Spec = spec;
        _app = app;
        _limiter = limiter;
        Statistics = statistics;
    }

    public FakeBackendSpec Spec { get; }

    public BackendStatistics Statistics { get; }

    public Uri Address { get; private set; } = null!;

    public static async Task<FakeAzureOpenAiBackend> StartAsync(FakeBackendSpec spec, long startTimestamp)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();

        // Azure OpenAI enforces RPM over short windows, not per minute: one token every 1/rate seconds, and a bucket of
        // one second's worth so that a burst passes only briefly.
        var limiter = new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
        {
            TokenLimit = Math.Max(1, (int)spec.RequestsPerSecond),
            TokensPerPeriod = 1,
            ReplenishmentPeriod = TimeSpan.FromSeconds(1 / spec.RequestsPerSecond),
            QueueLimit = 0,
            AutoReplenishment = true,
        });

        var backend = new FakeAzureOpenAiBackend(spec, app, limiter, new BackendStatistics(startTimestamp));
        app.MapPost("/openai/deployments/{deployment}/chat/completions", backend.ChatCompletionAsync);
        await app.StartAsync().ConfigureAwait(false);

        // Port 0 asks the OS for a free port; the server reports the one it bound.
        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        backend.Address = new Uri(bound + "/");
        return backend;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.DisposeAsync().ConfigureAwait(false);
        _limiter.Dispose();
    }

    private async Task<IResult> ChatCompletionAsync(string deployment, HttpContext context)
    {
        using var lease = _limiter.AttemptAcquire();
        if (!lease.IsAcquired)
        {
            Statistics.RecordThrottled();
            var retryAfter = lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? wait : TimeSpan.FromSeconds(1 / Spec.RequestsPerSecond);
            foreach (var (name, value) in AzureOpenAiThrottleHeaders.For(retryAfter))
            {
                context.Response.Headers[name] = value;
            }

            return Results.Json(
                new { error = new { code = "429", message = $"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded call rate limit of your current OpenAI S0 pricing tier. Please retry after {Math.Ceiling(retryAfter.TotalSeconds)} second." } },
                statusCode: StatusCodes.Status429TooManyRequests);
        }

        // Like the real service, every answer says what is left of the budget once this request is counted, and when
        // it refills (here: the next token); a client that reads them can stop before paying a 429.
        var remaining = _limiter.GetStatistics()?.CurrentAvailablePermits ?? 0;

        // A model takes a while to answer; the spread makes the latency percentiles meaningful.
        await Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.Next(40, 120)), context.RequestAborted).ConfigureAwait(false);
        Statistics.RecordOk();
        context.Response.Headers["x-ratelimit-remaining-requests"] = remaining.ToString(CultureInfo.InvariantCulture);
        context.Response.Headers["x-ratelimit-reset-requests"] =
            (1 / Spec.RequestsPerSecond).ToString("0.###", CultureInfo.InvariantCulture) + "s";
        return Results.Json(new
        {
            id = "chatcmpl-" + Guid.NewGuid().ToString("N")[..12],
            @object = "chat.completion",
            created = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
            model = deployment,
            choices = new[]
            {
                new { index = 0, finish_reason = "stop", message = new { role = "assistant", content = $"Hello from {Spec.Name}." } },
            },
            usage = new { prompt_tokens = 12, completion_tokens = 5, total_tokens = 17 },
        });
    }
}
