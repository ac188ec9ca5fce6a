using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Polly.PriorityRouting.SdkTests.Support;

/// <summary>
/// A loopback Azure OpenAI / OpenAI service that keeps real state of its own, as a deployment does: the Responses API
/// (create, plain or streamed; get; <c>previous_response_id</c>), files, batches and chat completions (whose file
/// content parts must name a file held here), under <c>/v1/</c>,
/// <c>/openai/v1/</c> and <c>/openai/…?api-version=</c>. It creates its own ids and answers 404 — with the services'
/// error bodies — for ids it does not hold. It can be told to throttle. Besides: encrypted reasoning items
/// (<c>include: ["reasoning.encrypted_content"]</c>, sent back in a later <c>input</c>; the service answers 400 for
/// content it did not encrypt), Assistants threads and runs (<c>/threads/runs</c>, <c>/threads/{id}/runs</c>), and a
/// made-up sessions API (<c>POST /api/sessions</c> answers 201 with <c>{"sessionId":…}</c> and a <c>Location</c>) for
/// custom id extractors.
/// </summary>
internal sealed class FakeStatefulOpenAIBackend : IAsyncDisposable
{
    public const long Created = 1732406400;

    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, JsonObject> _responses = new();
    private readonly ConcurrentDictionary<string, JsonObject> _files = new();
    private readonly ConcurrentDictionary<string, JsonObject> _batches = new();
    private readonly ConcurrentDictionary<string, string> _reasoning = new();
    private readonly ConcurrentDictionary<string, JsonObject> _threads = new();
    private readonly ConcurrentDictionary<string, JsonObject> _runs = new();
    private readonly ConcurrentDictionary<string, List<string>> _sessions = new();
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

    public bool Holds(string id)
        => _responses.ContainsKey(id) || _files.ContainsKey(id) || _batches.ContainsKey(id) || _reasoning.ContainsKey(id) ||
           _threads.ContainsKey(id) || _runs.ContainsKey(id) || _sessions.ContainsKey(id);

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

        var segments = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (Array.IndexOf(segments, "threads") is >= 0 and var threads)
        {
            return await AnswerThreadsAsync(context, segments[(threads + 1)..], method);
        }

        if (path.StartsWith("/api/sessions", StringComparison.Ordinal))
        {
            return await AnswerSessionsAsync(context, segments[2..], method);
        }

        if (segments is [.., "chat", "completions"] && HttpMethods.IsPost(method))
        {
            return await CompleteChatAsync(context);
        }

        // …/responses[/{id}], …/files[/{id}], …/batches[/{id}] under any prefix.
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

        // Reasoning items sent back must have been encrypted here: another deployment cannot decrypt them.
        foreach (var item in body["input"] as JsonArray ?? [])
        {
            if (item?["type"]?.GetValue<string>() == "reasoning" &&
                (item["id"]?.GetValue<string>() is not { } rs || !_reasoning.TryGetValue(rs, out var encrypted) || item["encrypted_content"]?.GetValue<string>() != encrypted))
            {
                await WriteJsonAsync(context, 400, Error("The encrypted content for item " + item["id"] + " could not be verified.", "invalid_encrypted_content", "input"));
                return 400;
            }
        }

        var id = NextId("resp_");
        var text = $"Answer {id} from {Name}.";
        var instructions = body["instructions"]?.GetValue<string>();
        JsonObject? reasoning = null;
        if (body["include"] is JsonArray include && include.Any(i => i?.GetValue<string>() == "reasoning.encrypted_content"))
        {
            var rs = NextId("rs_");
            _reasoning[rs] = $"enc-{Name}-{rs}-" + new string('e', 2000);
            reasoning = new JsonObject { ["id"] = rs, ["type"] = "reasoning", ["summary"] = new JsonArray(), ["encrypted_content"] = _reasoning[rs] };
        }

        var response = ResponseObject(id, body["model"]?.GetValue<string>() ?? "gpt-4o", previous, "completed", text, instructions, reasoning);
        if (body["store"]?.GetValue<bool>() != false)
        {
            _responses[id] = response;
        }

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

        var inProgress = ResponseObject(id, response["model"]!.GetValue<string>(), previous, "in_progress", null, instructions, null);
        await EventAsync("response.created", new JsonObject { ["response"] = inProgress });
        if (StreamPause is { } pause)
        {
            await pause.WaitAsync(TimeSpan.FromSeconds(10), context.RequestAborted);
        }

        if (reasoning is not null)
        {
            await EventAsync("response.output_item.added", new JsonObject { ["output_index"] = 0, ["item"] = reasoning.DeepClone() });
            await EventAsync("response.output_item.done", new JsonObject { ["output_index"] = 0, ["item"] = reasoning.DeepClone() });
        }

        await EventAsync("response.output_text.delta", new JsonObject
        {
            ["item_id"] = "msg_" + id, ["output_index"] = 0, ["content_index"] = 0, ["delta"] = text, ["logprobs"] = new JsonArray(),
        });
        await EventAsync("response.completed", new JsonObject { ["response"] = response.DeepClone() });
        return 200;
    }

    private static JsonObject ResponseObject(string id, string model, string? previous, string status, string? text, string? instructions = null, JsonObject? reasoning = null)
    {
        var output = new JsonArray();
        if (reasoning is not null)
        {
            output.Add(reasoning.DeepClone());
        }

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
            ["instructions"] = instructions,
            ["previous_response_id"] = previous,
            ["output"] = output,
            ["parallel_tool_calls"] = true,
            ["tool_choice"] = "auto",
            ["tools"] = new JsonArray(),
            ["store"] = true,
        };
    }

    /// <summary>A chat completion; a file named in a content part must have been uploaded here (else 404, as the service).</summary>
    private async Task<int> CompleteChatAsync(HttpContext context)
    {
        var body = JsonNode.Parse(await new StreamReader(context.Request.Body).ReadToEndAsync())!.AsObject();
        foreach (var message in body["messages"] as JsonArray ?? [])
        {
            foreach (var part in message?["content"] as JsonArray ?? [])
            {
                if (part?["type"]?.GetValue<string>() == "file" && part["file"]?["file_id"]?.GetValue<string>() is { } fileId && !_files.ContainsKey(fileId))
                {
                    await WriteJsonAsync(context, 404, Error($"File with id '{fileId}' not found.", "not_found", "messages"));
                    return 404;
                }
            }
        }

        var id = NextId("chatcmpl-");
        await WriteJsonAsync(context, 200, new JsonObject
        {
            ["id"] = id,
            ["object"] = "chat.completion",
            ["created"] = Created,
            ["model"] = body["model"]?.GetValue<string>() ?? "gpt-4o",
            ["choices"] = new JsonArray(new JsonObject
            {
                ["index"] = 0,
                ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = $"Answer {id} from {Name}." },
                ["finish_reason"] = "stop",
            }),
            ["usage"] = new JsonObject { ["prompt_tokens"] = 10, ["completion_tokens"] = 5, ["total_tokens"] = 15 },
        });
        return 200;
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

    /// <summary>
    /// <c>POST /threads/runs</c> (a thread and a run in it; streamed, its first event is <c>thread.created</c>),
    /// <c>POST /threads/{id}/runs</c>, <c>GET /threads/{id}</c>, <c>GET /threads/{id}/runs/{run}</c>.
    /// </summary>
    private async Task<int> AnswerThreadsAsync(HttpContext context, string[] rest, string method)
    {
        if (rest is ["runs"] && HttpMethods.IsPost(method))
        {
            var body = JsonNode.Parse(await new StreamReader(context.Request.Body).ReadToEndAsync())!.AsObject();
            var thread = NewThread();
            var run = NewRun(thread);
            if (body["stream"]?.GetValue<bool>() != true)
            {
                await WriteJsonAsync(context, 200, run);
                return 200;
            }

            context.Response.StatusCode = 200;
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync($"event: thread.created\ndata: {thread.ToJsonString()}\n\n");
            await context.Response.WriteAsync($"event: thread.run.created\ndata: {run.ToJsonString()}\n\n");
            await context.Response.WriteAsync("event: done\ndata: [DONE]\n\n");
            return 200;
        }

        if (rest.Length == 0 || !_threads.TryGetValue(rest[0], out var held))
        {
            await WriteJsonAsync(context, 404, Error($"No thread found with id '{(rest.Length > 0 ? rest[0] : null)}'.", "not_found"));
            return 404;
        }

        switch (rest[1..])
        {
            case [] when HttpMethods.IsGet(method):
                await WriteJsonAsync(context, 200, held.DeepClone());
                return 200;
            case ["runs"] when HttpMethods.IsPost(method):
                await WriteJsonAsync(context, 200, NewRun(held));
                return 200;
            case ["runs", var runId] when HttpMethods.IsGet(method) && _runs.TryGetValue(runId, out var run) && run["thread_id"]!.GetValue<string>() == rest[0]:
                await WriteJsonAsync(context, 200, run.DeepClone());
                return 200;
            default:
                await WriteJsonAsync(context, 404, Error("Not found.", "not_found"));
                return 404;
        }
    }

    private JsonObject NewThread()
    {
        var id = NextId("thread_");
        return _threads[id] = new JsonObject { ["id"] = id, ["object"] = "thread", ["created_at"] = Created, ["metadata"] = new JsonObject() };
    }

    private JsonObject NewRun(JsonObject thread)
    {
        var id = NextId("run_");
        return _runs[id] = new JsonObject
        {
            ["id"] = id, ["object"] = "thread.run", ["created_at"] = Created, ["thread_id"] = thread["id"]!.GetValue<string>(), ["status"] = "queued",
        };
    }

    /// <summary>
    /// A made-up API with server-side sessions: <c>POST /api/sessions</c> → 201 <c>{"sessionId":…}</c> and
    /// <c>Location</c>; <c>POST /api/sessions/{id}/messages</c> → 200 with the session's message count;
    /// <c>DELETE /api/sessions/{id}</c>. Ids it does not hold → 404.
    /// </summary>
    private async Task<int> AnswerSessionsAsync(HttpContext context, string[] rest, string method)
    {
        if (rest.Length == 0 && HttpMethods.IsPost(method))
        {
            var id = NextId("sess-");
            _sessions[id] = [];
            context.Response.Headers.Location = "/api/sessions/" + id;
            await WriteJsonAsync(context, 201, new JsonObject { ["status"] = "open", ["sessionId"] = id });
            return 201;
        }

        if (rest.Length == 0 || !_sessions.TryGetValue(rest[0], out var messages))
        {
            await WriteJsonAsync(context, 404, new JsonObject { ["error"] = "unknown session" });
            return 404;
        }

        switch (rest[1..])
        {
            case ["messages"] when HttpMethods.IsPost(method):
                lock (messages)
                {
                    messages.Add("m");
                }

                await WriteJsonAsync(context, 200, new JsonObject { ["sessionId"] = rest[0], ["messages"] = messages.Count });
                return 200;
            case [] when HttpMethods.IsDelete(method):
                _sessions.TryRemove(rest[0], out _);
                context.Response.StatusCode = 204;
                return 204;
            default:
                await WriteJsonAsync(context, 404, new JsonObject { ["error"] = "not found" });
                return 404;
        }
    }
}
