using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Polly.PriorityRouting.SdkTests.Support;

/// <summary>
/// A loopback Azure OpenAI / OpenAI chat-completions service: a real Kestrel server on 127.0.0.1 and a random port that
/// serves <c>POST /openai/deployments/{deployment}/chat/completions?api-version=…</c> (Azure style) and
/// <c>POST /v1/chat/completions</c> (OpenAI style), under any base path (as behind a gateway), plain or streamed as
/// server-sent events, and can be told to throttle with the headers and error body the real services send. It records
/// every request it receives.
/// </summary>
internal sealed partial class FakeOpenAIBackend : IAsyncDisposable
{
    /// <summary>The <c>created</c> timestamp of every completion (2024-11-24T00:00:00Z): bodies are deterministic.</summary>
    public const long Created = 1732406400;

    private readonly WebApplication _app;
    private long _throttledUntilTicks;
    private long _nextThrottleTicks;
    private int _hits;

    private FakeOpenAIBackend(WebApplication app, string name)
    {
        _app = app;
        Name = name;
        Reply = $"Hello from {name}.";
    }

    public string Name { get; }

    /// <summary>The root address, e.g. <c>http://127.0.0.1:41234/</c>.</summary>
    public Uri Address { get; private set; } = null!;

    /// <summary>The assistant's answer; streamed word by word.</summary>
    public string Reply { get; set; }

    /// <summary>Every request received, throttled ones included.</summary>
    public int Hits => Volatile.Read(ref _hits);

    /// <summary>Requests answered 429.</summary>
    public int Throttled => Received.Count(r => r.Throttled);

    public ConcurrentQueue<(RecordedRequest Request, bool Throttled)> Received { get; } = new();

    public static async Task<FakeOpenAIBackend> StartAsync(string name)
    {
        var app = LoopbackServer.Create();
        var backend = new FakeOpenAIBackend(app, name);
        app.Run(backend.HandleAsync);
        backend.Address = await LoopbackServer.StartAsync(app);
        return backend;
    }

    /// <summary>Answers 429 for <paramref name="duration"/> from now; the throttle headers count down to its end.</summary>
    public FakeOpenAIBackend ThrottleFor(TimeSpan duration)
    {
        Interlocked.Exchange(ref _throttledUntilTicks, (DateTimeOffset.UtcNow + duration).UtcTicks);
        return this;
    }

    /// <summary>
    /// Answers 429 for <paramref name="duration"/> from the next request on, so that the window does not depend on how
    /// long a loaded machine takes to send that request.
    /// </summary>
    public FakeOpenAIBackend ThrottleFromNextRequestFor(TimeSpan duration)
    {
        Interlocked.Exchange(ref _nextThrottleTicks, duration.Ticks);
        return this;
    }

    /// <summary>The requests that were answered with a completion.</summary>
    public IReadOnlyList<RecordedRequest> Served => [.. Received.Where(r => !r.Throttled).Select(r => r.Request)];

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    /// <summary>When set, a stream pauses after its first word until this task completes.</summary>
    public Task? StreamPause { get; set; }

    /// <summary>How long a completion takes before its first byte.</summary>
    public TimeSpan Latency { get; set; }

    /// <summary>
    /// When set, every chat request is answered 429 with this retry-after: a backend saturated again as soon as it
    /// frees up.
    /// </summary>
    public TimeSpan? AlwaysThrottledFor { get; set; }

    [GeneratedRegex("^(/[^/]+)*/openai/deployments/(?<deployment>[^/]+)/chat/completions$")]
    private static partial Regex AzureChatPath();

    private static Task WriteJsonAsync(HttpContext context, int status, JsonNode body)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(body.ToJsonString());
    }

    /// <summary>Azure's error body has a code and a message; OpenAI's adds a type and a param.</summary>
    private static JsonObject Error(string code, string message, string? type = null)
    {
        var error = new JsonObject { ["code"] = code, ["message"] = message };
        if (type is not null)
        {
            error["type"] = type;
            error["param"] = null;
        }

        return new JsonObject { ["error"] = error };
    }

    private static string Ceiling(double value) => ((long)Math.Ceiling(value)).ToString(CultureInfo.InvariantCulture);

    private async Task HandleAsync(HttpContext context)
    {
        Interlocked.Increment(ref _hits);
        var now = DateTimeOffset.UtcNow;
        if (Interlocked.Exchange(ref _nextThrottleTicks, 0) is > 0 and var next)
        {
            Interlocked.Exchange(ref _throttledUntilTicks, (now + TimeSpan.FromTicks(next)).UtcTicks);
        }

        using var reader = new StreamReader(context.Request.Body);
        var body = await reader.ReadToEndAsync(context.RequestAborted);
        var request = new RecordedRequest(
            context.Request.Method,
            context.Request.Path.Value ?? string.Empty,
            context.Request.QueryString.Value ?? string.Empty,
            context.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase),
            body,
            now);
        context.Response.Headers["x-backend"] = Name;

        var azure = AzureChatPath().Match(request.Path);
        var apiVersion = context.Request.Query["api-version"].ToString();
        if (!HttpMethods.IsPost(request.Method) || (!azure.Success && !request.Path.EndsWith("/v1/chat/completions", StringComparison.Ordinal)))
        {
            Received.Enqueue((request, false));
            await WriteJsonAsync(context, 404, Error("404", "Resource not found"));
            return;
        }

        if (azure.Success && apiVersion.Length == 0)
        {
            Received.Enqueue((request, false));
            await WriteJsonAsync(context, 404, Error("404", "Resource not found"));
            return;
        }

        var remaining = AlwaysThrottledFor ?? new DateTimeOffset(Interlocked.Read(ref _throttledUntilTicks), TimeSpan.Zero) - now;
        if (remaining > TimeSpan.Zero)
        {
            Received.Enqueue((request, true));
            await ThrottleAsync(context, remaining, azure.Success, apiVersion);
            return;
        }

        Received.Enqueue((request, false));
        await Task.Delay(Latency, context.RequestAborted);
        var json = JsonNode.Parse(body)!.AsObject();
        var model = json["model"]?.GetValue<string>() ?? azure.Groups["deployment"].Value;
        var id = $"chatcmpl-{Name}-{Hits}";
        if (json["stream"]?.GetValue<bool>() == true)
        {
            var includeUsage = json["stream_options"]?["include_usage"]?.GetValue<bool>() == true;
            await StreamAsync(context, id, model, includeUsage);
            return;
        }

        context.Response.Headers["x-ratelimit-remaining-requests"] = "99";
        await WriteJsonAsync(context, 200, new JsonObject
        {
            ["id"] = id,
            ["object"] = "chat.completion",
            ["created"] = Created,
            ["model"] = model,
            ["system_fingerprint"] = "fp_fake",
            ["choices"] = new JsonArray(new JsonObject
            {
                ["index"] = 0,
                ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = Reply, ["refusal"] = null },
                ["logprobs"] = null,
                ["finish_reason"] = "stop",
            }),
            ["usage"] = Usage(),
        });
    }

    private JsonObject Usage() => new()
    {
        ["prompt_tokens"] = 9,
        ["completion_tokens"] = Words().Count,
        ["total_tokens"] = 9 + Words().Count,
    };

    /// <summary>The reply cut into tokens that keep their leading space: "Hello", " from", " a."</summary>
    private List<string> Words() => [.. Regex.Matches(Reply, @"\s*\S+").Select(m => m.Value)];

    private async Task StreamAsync(HttpContext context, string id, string model, bool includeUsage)
    {
        context.Response.StatusCode = 200;
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";

        async Task Chunk(JsonObject delta, string? finishReason, JsonObject? usage = null)
        {
            var chunk = new JsonObject
            {
                ["id"] = id,
                ["object"] = "chat.completion.chunk",
                ["created"] = Created,
                ["model"] = model,
                ["system_fingerprint"] = "fp_fake",
                ["choices"] = usage is null
                    ? new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = delta, ["logprobs"] = null, ["finish_reason"] = finishReason })
                    : new JsonArray(),
            };
            if (usage is not null)
            {
                chunk["usage"] = usage;
            }

            await context.Response.WriteAsync("data: " + chunk.ToJsonString(new JsonSerializerOptions()) + "\n\n");
            await context.Response.Body.FlushAsync();
        }

        await Chunk(new JsonObject { ["role"] = "assistant", ["content"] = string.Empty, ["refusal"] = null }, null);
        foreach (var (word, index) in Words().Select((w, i) => (w, i)))
        {
            await Chunk(new JsonObject { ["content"] = word }, null);
            if (index == 0 && StreamPause is { } pause)
            {
                await pause.WaitAsync(TimeSpan.FromSeconds(10), context.RequestAborted);
            }
        }

        await Chunk([], "stop");
        if (includeUsage)
        {
            await Chunk([], null, Usage());
        }

        await context.Response.WriteAsync("data: [DONE]\n\n");
    }

    private static Task ThrottleAsync(HttpContext context, TimeSpan remaining, bool azure, string apiVersion)
    {
        var seconds = Ceiling(remaining.TotalSeconds);
        var headers = context.Response.Headers;
        headers["retry-after"] = seconds;
        headers["retry-after-ms"] = Ceiling(remaining.TotalMilliseconds);
        headers["x-ratelimit-remaining-requests"] = "0";
        headers["x-ratelimit-reset-requests"] = seconds + "s";
        var error = azure
            ? Error(
                "429",
                $"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version {apiVersion} have exceeded call rate limit of your current OpenAI S0 pricing tier. Please retry after {seconds} second(s). Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit.")
            : Error("rate_limit_exceeded", $"Rate limit reached for requests. Please try again in {seconds}s.", "requests");
        return WriteJsonAsync(context, 429, error);
    }
}
