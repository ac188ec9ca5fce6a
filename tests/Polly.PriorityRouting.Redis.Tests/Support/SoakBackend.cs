using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Polly.PriorityRouting.Redis.Tests.Support;

/// <summary>
/// A loopback Azure OpenAI deployment for the every-feature soak: it serves one model under its own deployment name
/// (404 for any other name — a model map that did not rewrite), keeps the responses it created (404 for a follow-up or
/// read of an id it does not hold — affinity broken), checks its own <c>api-key</c> (401 otherwise — a credential
/// leaked), keeps an Azure-like token budget refilled in fixed windows (429 until the window ends for a request that
/// does not fit, <c>x-ratelimit-*-tokens</c> on every admitted answer), and, decided by a hash of (seed, backend, hit),
/// throttles, fails, resets the connection, stalls before its headers, and streams chat answers — some of them aborted
/// or stalled half-way. Each answer says in <c>x-soak-plan</c> what its body will do.
/// </summary>
internal sealed class SoakBackend : IAsyncDisposable
{
    public const string PlanHeader = "x-soak-plan";
    public const string RequestIdHeader = "x-soak-id";
    public const long Limit = 60_000;

    private const double ThrottleRate = 0.02;
    private const double ServerErrorRate = 0.01;
    private const double ResetRate = 0.005;
    private const double StallRate = 0.003;
    private const double AbortedStreamRate = 0.08;
    private const double StalledStreamRate = 0.05;

    private static readonly TimeSpan Window = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan StallBeforeHeaders = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan StallMidStream = TimeSpan.FromMilliseconds(400);

    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, ConcurrentQueue<string>> _calls;
    private readonly ulong _seed;
    private readonly ConcurrentDictionary<string, byte> _responses = new(StringComparer.Ordinal);
    private readonly object _budgetLock = new();
    private long _window = -1;
    private long _consumed;
    private int _hits;
    private int _faultable;
    private int _created;
    private int _throttles;
    private int _budgetThrottles;
    private int _serverErrors;
    private int _resets;
    private int _stalls;
    private int _streams;
    private int _abortedStreams;
    private int _stalledStreams;

    private SoakBackend(WebApplication app, string name, string deployment, ulong seed, ConcurrentDictionary<string, ConcurrentQueue<string>> calls)
    {
        _app = app;
        _calls = calls;
        Name = name;
        Deployment = deployment;
        _seed = seed;
        app.Run(HandleAsync);
    }

    public string Name { get; }

    /// <summary>Gets the deployment name this backend serves <c>gpt-4o</c> under.</summary>
    public string Deployment { get; }

    public string ApiKey => "key-" + Name;

    public Uri Address { get; private set; } = null!;

    public int Hits => Volatile.Read(ref _hits);

    public int Throttles => Volatile.Read(ref _throttles);

    public int BudgetThrottles => Volatile.Read(ref _budgetThrottles);

    public int ServerErrors => Volatile.Read(ref _serverErrors);

    public int Resets => Volatile.Read(ref _resets);

    public int Stalls => Volatile.Read(ref _stalls);

    public int Streams => Volatile.Read(ref _streams);

    public int AbortedStreams => Volatile.Read(ref _abortedStreams);

    public int StalledStreams => Volatile.Read(ref _stalledStreams);

    /// <summary>Gets the requests this backend should never have received: wrong deployment, model or credential.</summary>
    public ConcurrentQueue<string> Unexpected { get; } = new();

    public int Created => Volatile.Read(ref _created);

    /// <summary>Starts a deployment; every request carrying <see cref="RequestIdHeader"/> is recorded in <paramref name="calls"/>.</summary>
    public static async Task<SoakBackend> StartAsync(string name, string deployment, ulong seed, ConcurrentDictionary<string, ConcurrentQueue<string>> calls)
    {
        var app = LoopbackServer.Create();
        var backend = new SoakBackend(app, name, deployment, seed, calls);
        backend.Address = await LoopbackServer.StartAsync(app);
        return backend;
    }

    public bool Holds(string id) => _responses.ContainsKey(id);

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private static ulong Mix(ulong x)
    {
        x += 0x9E3779B97F4A7C15UL;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }

    private async Task HandleAsync(HttpContext context)
    {
        Interlocked.Increment(ref _hits);
        context.Response.Headers["x-backend"] = Name;
        if (context.Request.Headers[RequestIdHeader].ToString() is { Length: > 0 } request)
        {
            _calls.GetOrAdd(request, _ => new ConcurrentQueue<string>()).Enqueue(Name);
        }

        if (context.Request.Headers["api-key"] != ApiKey)
        {
            await Refuse(context, 401, $"{Name}: api-key '{context.Request.Headers["api-key"]}' is not mine");
            return;
        }

        var path = context.Request.Path.Value ?? string.Empty;
        JsonElement body = default;
        if (HttpMethods.IsPost(context.Request.Method))
        {
            using var document = await JsonDocument.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted);
            body = document.RootElement.Clone();
        }

        // Reads of a stored response are never faulted: their 404 is the affinity check.
        if (HttpMethods.IsGet(context.Request.Method) && path.StartsWith("/openai/v1/responses/", StringComparison.Ordinal))
        {
            var id = path["/openai/v1/responses/".Length..];
            if (!_responses.ContainsKey(id))
            {
                await Status(context, 404, "not_found");
                return;
            }

            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync($$"""{"id":"{{id}}","object":"response","status":"completed"}""");
            return;
        }

        // Faults are drawn per faultable request, not per hit: which hits are unfaultable reads depends on timing, and
        // every kind of fault must happen on every backend on every run, whatever the interleaving.
        var faultable = Interlocked.Increment(ref _faultable);
        var bits = Mix(_seed ^ Mix((ulong)faultable));
        var roll = ForcedFault(faultable) ?? (bits >> 11) * (1.0 / (1UL << 53));
        var detail = (int)(bits & 0xFFFF);
        if (await FaultAsync(context, roll, detail))
        {
            return;
        }

        if (path.StartsWith("/openai/deployments/", StringComparison.Ordinal))
        {
            var deployment = path.Split('/')[3];
            if (deployment != Deployment)
            {
                await Refuse(context, 404, $"{Name}: deployment '{deployment}' is not mine ({Deployment})");
                return;
            }

            await ChatAsync(context, body, detail);
            return;
        }

        if (path == "/openai/v1/responses")
        {
            await CreateResponseAsync(context, body);
            return;
        }

        await Refuse(context, 404, $"{Name}: unknown path {path}");
    }

    /// <summary>Early faultable requests that get each kind of fault for sure, so a short run still sees every kind.</summary>
    private static double? ForcedFault(int faultable) => faultable switch
    {
        20 => ThrottleRate / 2,
        40 => ThrottleRate + (ServerErrorRate / 2),
        60 => ThrottleRate + ServerErrorRate + (ResetRate / 2),
        80 => ThrottleRate + ServerErrorRate + ResetRate + (StallRate / 2),
        _ => null,
    };

    private async Task<bool> FaultAsync(HttpContext context, double roll, int detail)
    {
        if (roll < ThrottleRate)
        {
            Interlocked.Increment(ref _throttles);
            context.Response.Headers["retry-after-ms"] = (100 + (detail % 5 * 100)).ToString(CultureInfo.InvariantCulture);
            await Status(context, 429, "rate_limit_exceeded");
            return true;
        }

        roll -= ThrottleRate;
        if (roll < ServerErrorRate)
        {
            Interlocked.Increment(ref _serverErrors);
            await Status(context, (detail & 1) == 0 ? 500 : 503, "server_error");
            return true;
        }

        roll -= ServerErrorRate;
        if (roll < ResetRate)
        {
            Interlocked.Increment(ref _resets);
            context.Abort();
            return true;
        }

        roll -= ResetRate;
        if (roll < StallRate)
        {
            Interlocked.Increment(ref _stalls);
            try
            {
                await Task.Delay(StallBeforeHeaders, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                // The attempt timeout gave up and closed the connection.
                return true;
            }

            await Status(context, 500, "stalled");
            return true;
        }

        return false;
    }

    private async Task ChatAsync(HttpContext context, JsonElement body, int detail)
    {
        var cost = (body.TryGetProperty("max_tokens", out var max) ? max.GetInt64() : 0) + 100;
        if (!Admit(context, cost))
        {
            return;
        }

        var stream = body.TryGetProperty("stream", out var s) && s.ValueKind == JsonValueKind.True;
        if (!stream)
        {
            context.Response.Headers[PlanHeader] = "ok";
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("""{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"}}]}""");
            return;
        }

        // Like faults, the first few streams are sure to include one aborted and one stalled.
        var streamIndex = Interlocked.Increment(ref _streams);
        var roll = (detail >> 4) / 4096.0;
        var plan = streamIndex == 5 || roll < AbortedStreamRate ? "abort" : streamIndex == 10 || roll < AbortedStreamRate + StalledStreamRate ? "stall" : "ok";
        context.Response.Headers[PlanHeader] = plan;
        context.Response.ContentType = "text/event-stream";
        for (var k = 0; k < 6; k++)
        {
            if (k == 3 && plan == "abort")
            {
                // Let the events already flushed reach the client first: the stream breaks after the caller has it.
                Interlocked.Increment(ref _abortedStreams);
                await Task.Delay(50, context.RequestAborted);
                context.Abort();
                return;
            }

            if (k == 3 && plan == "stall")
            {
                Interlocked.Increment(ref _stalledStreams);
                await Task.Delay(StallMidStream, context.RequestAborted);
            }

            await context.Response.WriteAsync($"data: {{\"choices\":[{{\"delta\":{{\"content\":\"{k}\"}}}}]}}\n\n", context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
        }

        await context.Response.WriteAsync("data: [DONE]\n\n", context.RequestAborted);
    }

    private async Task CreateResponseAsync(HttpContext context, JsonElement body)
    {
        if (!body.TryGetProperty("model", out var model) || model.GetString() != Deployment)
        {
            await Refuse(context, 400, $"{Name}: body model '{(body.TryGetProperty("model", out var m) ? m.ToString() : "none")}' is not mine ({Deployment})");
            return;
        }

        if (body.TryGetProperty("previous_response_id", out var previous) && !_responses.ContainsKey(previous.GetString()!))
        {
            await Status(context, 404, "previous_response_not_found");
            return;
        }

        if (!Admit(context, 200))
        {
            return;
        }

        var id = $"resp_{Name.Replace("-", string.Empty, StringComparison.Ordinal)}{Interlocked.Increment(ref _created).ToString(CultureInfo.InvariantCulture)}";
        _responses[id] = 0;
        context.Response.Headers[PlanHeader] = "ok";
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync($$"""{"id":"{{id}}","object":"response","status":"completed","model":"{{Deployment}}"}""");
    }

    /// <summary>Azure's admission: the request's tokens against the window's budget; headers on what it admits.</summary>
    private bool Admit(HttpContext context, long cost)
    {
        var now = DateTimeOffset.UtcNow;
        var window = now.ToUnixTimeMilliseconds() / (long)Window.TotalMilliseconds;
        var windowEnd = DateTimeOffset.FromUnixTimeMilliseconds((window + 1) * (long)Window.TotalMilliseconds);
        long left;
        lock (_budgetLock)
        {
            if (window != _window)
            {
                _window = window;
                _consumed = 0;
            }

            left = Limit - _consumed;
            if (cost <= left)
            {
                _consumed += cost;
                left -= cost;
            }
            else
            {
                left = -1;
            }
        }

        var reset = Math.Max(1, (long)Math.Ceiling((windowEnd - now).TotalMilliseconds)).ToString(CultureInfo.InvariantCulture) + "ms";
        if (left < 0)
        {
            Interlocked.Increment(ref _budgetThrottles);
            context.Response.StatusCode = 429;
            context.Response.Headers["retry-after-ms"] = reset[..^2];
            return false;
        }

        context.Response.Headers["x-ratelimit-remaining-tokens"] = left.ToString(CultureInfo.InvariantCulture);
        context.Response.Headers["x-ratelimit-limit-tokens"] = Limit.ToString(CultureInfo.InvariantCulture);
        context.Response.Headers["x-ratelimit-reset-tokens"] = reset;
        return true;
    }

    private Task Refuse(HttpContext context, int status, string why)
    {
        Unexpected.Enqueue(why);
        return Status(context, status, "soak_refused");
    }

    private static Task Status(HttpContext context, int status, string code)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync($$$"""{"error":{"code":"{{{code}}}","message":"from the soak backend"}}""");
    }
}
