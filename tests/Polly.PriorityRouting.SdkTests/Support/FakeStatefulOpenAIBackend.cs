using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Polly.PriorityRouting.SdkTests.Support;

/// <summary>
/// A loopback Azure OpenAI / OpenAI service that keeps real state of its own, as a deployment does: the Responses API
/// (create, plain or streamed; get; <c>previous_response_id</c>), files and batches, under <c>/v1/</c>,
/// <c>/openai/v1/</c> and <c>/openai/…?api-version=</c>. It creates its own ids and answers 404 — with the services'
/// error bodies — for ids it does not hold. It can be told to throttle.
/// </summary>
internal sealed class FakeStatefulOpenAIBackend : IAsyncDisposable
{
    public const long Created = 1732406400;

    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, JsonObject> _responses = new();
    private readonly ConcurrentDictionary<string, JsonObject> _files = new();
    private readonly ConcurrentDictionary<string, JsonObject> _batches = new();
    private long _throttledUntilTicks;
    private int _sequence;

    private FakeStatefulOpenAIBackend(WebApplication app, string name)
    {
        _app = app;
        Name = name;
    }

    public string Name { get; }

    public Uri Address { get; private set; } = null!;

    /// <summary>Every request received: method, path, status answered.</summary>
    public ConcurrentQueue<(string Method, string Path, int Status)> Received { get; } = new();

    /// <summary>When set, a streamed response pauses after its first event until this task completes.</summary>
    public Task? StreamPause { get; set; }

    public int Hits => Received.Count;

    public int NotFound => Received.Count(r => r.Status == 404);

    public static async Task<FakeStatefulOpenAIBackend> StartAsync(string name)
    {
        var app = LoopbackServer.Create();
        var backend = new FakeStatefulOpenAIBackend(app, name);
        app.Run(backend.HandleAsync);
        backend.Address = await LoopbackServer.StartAsync(app);
        return backend;
    }

    public FakeStatefulOpenAIBackend ThrottleFor(TimeSpan duration)
    {
        Interlocked.Exchange(ref _throttledUntilTicks, (DateTimeOffset.UtcNow + duration).UtcTicks);
        return this;
    }

    public bool Holds(string id) => _responses.ContainsKey(id) || _files.ContainsKey(id) || _batches.ContainsKey(id);

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private static Task WriteJsonAsync(HttpContext context, int status, JsonNode body)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(body.ToJsonString());
    }

    private static JsonObject Error(string message, string code, string? param = null)
        => new() { ["error"] = new JsonObject { ["message"] = message, ["type"] = "invalid_request_error", ["param"] = param, ["code"] = code } };

    private string NextId(string prefix) => $"{prefix}{Name}{Interlocked.Increment(ref _sequence)}";

    private async Task HandleAsync(HttpContext context)
    {
        var path = context.Request.Path.Value ?? string.Empty;
        var method = context.Request.Method;
        var status = await AnswerAsync(context, path, method);
        Received.Enqueue((method, path, status));
    }

    private async Task<int> AnswerAsync(HttpContext context, string path, string method)
    {
        var remaining = new DateTimeOffset(Interlocked.Read(ref _throttledUntilTicks), TimeSpan.Zero) - DateTimeOffset.UtcNow;
        if (remaining > TimeSpan.Zero)
        {
            var seconds = ((long)Math.Ceiling(remaining.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
            context.Response.Headers["retry-after"] = seconds;
            context.Response.Headers["retry-after-ms"] = ((long)Math.Ceiling(remaining.TotalMilliseconds)).ToString(CultureInfo.InvariantCulture);
            await WriteJsonAsync(context, 429, Error($"Rate limit reached. Please try again in {seconds}s.", "rate_limit_exceeded"));
            return 429;
        }

        // …/responses[/{id}], …/files[/{id}], …/batches[/{id}] under any prefix.
        var segments = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        var at = Array.FindLastIndex(segments, s => s is "responses" or "files" or "batches");
        if (at < 0)
        {
            await WriteJsonAsync(context, 404, Error("Resource not found", "404"));
            return 404;
        }

        var collection = segments[at];
        var id = at + 1 < segments.Length ? segments[at + 1] : null;
        var store = collection switch { "responses" => _responses, "files" => _files, _ => _batches };
        if (id is not null)
        {
            if (!store.TryGetValue(id, out var held))
            {
                var what = collection switch { "responses" => "Response", "files" => "File", _ => "Batch" };
                await WriteJsonAsync(context, 404, Error($"{what} with id '{id}' not found.", "not_found"));
                return 404;
            }

            if (HttpMethods.IsDelete(method))
            {
                store.TryRemove(id, out _);
                await WriteJsonAsync(context, 200, new JsonObject { ["id"] = id, ["object"] = collection == "files" ? "file" : "response", ["deleted"] = true });
                return 200;
            }

            await WriteJsonAsync(context, 200, held.DeepClone());
            return 200;
        }

        return collection switch
        {
            "responses" => await CreateResponseAsync(context),
            "files" => await CreateFileAsync(context),
            _ => await CreateBatchAsync(context),
        };
    }

    private async Task<int> CreateResponseAsync(HttpContext context)
    {
        var body = JsonNode.Parse(await new StreamReader(context.Request.Body).ReadToEndAsync())!.AsObject();
        var previous = body["previous_response_id"]?.GetValue<string>();
        if (previous is not null && !_responses.ContainsKey(previous))
        {
            await WriteJsonAsync(context, 404, Error($"Previous response with id '{previous}' not found.", "previous_response_not_found", "previous_response_id"));
            return 404;
        }

        var id = NextId("resp_");
        var text = $"Answer {id} from {Name}.";
        var response = ResponseObject(id, body["model"]?.GetValue<string>() ?? "gpt-4o", previous, "completed", text);
        _responses[id] = response;
        if (body["stream"]?.GetValue<bool>() != true)
        {
            await WriteJsonAsync(context, 200, response);
            return 200;
        }

        context.Response.StatusCode = 200;
        context.Response.ContentType = "text/event-stream";
        var sequence = 0;
        async Task EventAsync(string type, JsonObject data)
        {
            data["type"] = type;
            data["sequence_number"] = sequence++;
            await context.Response.WriteAsync($"event: {type}\ndata: {data.ToJsonString()}\n\n");
            await context.Response.Body.FlushAsync();
        }

        var inProgress = ResponseObject(id, response["model"]!.GetValue<string>(), previous, "in_progress", null);
        await EventAsync("response.created", new JsonObject { ["response"] = inProgress });
        if (StreamPause is { } pause)
        {
            await pause.WaitAsync(TimeSpan.FromSeconds(10), context.RequestAborted);
        }

        await EventAsync("response.output_text.delta", new JsonObject
        {
            ["item_id"] = "msg_" + id, ["output_index"] = 0, ["content_index"] = 0, ["delta"] = text, ["logprobs"] = new JsonArray(),
        });
        await EventAsync("response.completed", new JsonObject { ["response"] = response.DeepClone() });
        return 200;
    }

    private static JsonObject ResponseObject(string id, string model, string? previous, string status, string? text)
    {
        var output = new JsonArray();
        if (text is not null)
        {
            output.Add(new JsonObject
            {
                ["type"] = "message",
                ["id"] = "msg_" + id,
                ["status"] = "completed",
                ["role"] = "assistant",
                ["content"] = new JsonArray(new JsonObject { ["type"] = "output_text", ["text"] = text, ["annotations"] = new JsonArray() }),
            });
        }

        return new JsonObject
        {
            ["id"] = id,
            ["object"] = "response",
            ["created_at"] = Created,
            ["status"] = status,
            ["model"] = model,
            ["previous_response_id"] = previous,
            ["output"] = output,
            ["parallel_tool_calls"] = true,
            ["tool_choice"] = "auto",
            ["tools"] = new JsonArray(),
            ["store"] = true,
        };
    }

    private async Task<int> CreateFileAsync(HttpContext context)
    {
        var form = await context.Request.ReadFormAsync();
        var file = form.Files.Single();
        var id = NextId("file-");
        var created = new JsonObject
        {
            ["id"] = id,
            ["object"] = "file",
            ["bytes"] = file.Length,
            ["created_at"] = Created,
            ["filename"] = file.FileName,
            ["purpose"] = form["purpose"].ToString(),
            ["status"] = "processed",
        };
        _files[id] = created;
        await WriteJsonAsync(context, 200, created);
        return 200;
    }

    private async Task<int> CreateBatchAsync(HttpContext context)
    {
        var body = JsonNode.Parse(await new StreamReader(context.Request.Body).ReadToEndAsync())!.AsObject();
        var input = body["input_file_id"]?.GetValue<string>();
        if (input is null || !_files.ContainsKey(input))
        {
            await WriteJsonAsync(context, 404, Error($"File with id '{input}' not found.", "not_found", "input_file_id"));
            return 404;
        }

        var id = NextId("batch_");
        var created = new JsonObject
        {
            ["id"] = id,
            ["object"] = "batch",
            ["endpoint"] = body["endpoint"]?.GetValue<string>(),
            ["input_file_id"] = input,
            ["completion_window"] = body["completion_window"]?.GetValue<string>(),
            ["status"] = "validating",
            ["created_at"] = Created,
        };
        _batches[id] = created;
        await WriteJsonAsync(context, 200, created);
        return 200;
    }
}
