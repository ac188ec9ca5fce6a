using System.Net;
using System.Text;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.DependencyInjection;

namespace Polly.PriorityRouting.Benchmarks;

/// <summary>
/// What hard affinity costs: a request without ids (must be free), a follow-up that refers to a pinned id (one store
/// read), and a create whose answer is sniffed for its id while it is read (no buffering, O(1) allocation) — each next
/// to the same request with affinity off.
/// </summary>
[MemoryDiagnoser]
[MinColumn]
[MedianColumn]
public class AffinityBenchmarks
{
    private const string ChatAddress = "http://placeholder/openai/deployments/gpt/chat/completions?api-version=2024-10-21";
    private const string ResponsesAddress = "http://placeholder/openai/v1/responses";

    private static readonly byte[] FollowUpBody = Encoding.UTF8.GetBytes("""{"model":"gpt-4o","input":"and then?","previous_response_id":"resp_pinned"}""");
    private static readonly byte[] ChatBody = Encoding.UTF8.GetBytes(
        "{\"messages\":[{\"role\":\"system\",\"content\":\"You are terse.\"},{\"role\":\"user\",\"content\":\"" + new string('x', 1000) + "\"}],\"max_tokens\":100}");

    private static readonly byte[] CreateBody = Encoding.UTF8.GetBytes("""{"model":"gpt-4o","input":"hello"}""");

    private ServiceProvider? _services;
    private HttpMessageInvoker _on = null!;
    private HttpMessageInvoker _off = null!;
    private readonly byte[] _copyBuffer = new byte[16 * 1024];

    [Params(1_024, 65_536)]
    public int AnswerBytes { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var pins = new InMemoryAffinityStore();
        pins.Pin("resp_pinned", "backend1@http://backend1", TimeSpan.FromDays(30));
        var answer = Encoding.UTF8.GetBytes("{\"id\":\"resp_new\",\"object\":\"response\",\"text\":\"" + new string('x', Math.Max(0, AnswerBytes - 48)) + "\"}");

        var services = new ServiceCollection();
        services.AddHttpClient("on").ConfigurePrimaryHttpMessageHandler(() => new JsonAnswerHandler(answer))
            .AddResilienceHandler("on", b => b.AddPriorityRouting(Options(pins, enabled: true)));
        services.AddHttpClient("off").ConfigurePrimaryHttpMessageHandler(() => new JsonAnswerHandler(answer))
            .AddResilienceHandler("off", b => b.AddPriorityRouting(Options(pins, enabled: false)));
        _services = services.BuildServiceProvider();
        var factory = _services.GetRequiredService<IHttpMessageHandlerFactory>();
        _on = new HttpMessageInvoker(factory.CreateHandler("on"), disposeHandler: false);
        _off = new HttpMessageInvoker(factory.CreateHandler("off"), disposeHandler: false);
    }

    [GlobalCleanup]
    public void Cleanup() => _services?.Dispose();

    [Benchmark(Baseline = true, Description = "(d0) chat, no id, affinity off")]
    public Task<int> ChatOff() => SendAsync(_off, ChatAddress, null);

    [Benchmark(Description = "(d) chat, no id, affinity on")]
    public Task<int> ChatOn() => SendAsync(_on, ChatAddress, null);

    [Benchmark(Description = "(j0) chat with a 1 KB JSON body, affinity off")]
    public Task<int> ChatBodyOff() => SendAsync(_off, ChatAddress, ChatBody);

    [Benchmark(Description = "(j) chat with a 1 KB JSON body and no key, affinity on")]
    public Task<int> ChatBodyOn() => SendAsync(_on, ChatAddress, ChatBody);

    [Benchmark(Description = "(h0) follow-up with previous_response_id, affinity off")]
    public Task<int> FollowUpOff() => SendAsync(_off, ResponsesAddress, FollowUpBody);

    [Benchmark(Description = "(h) follow-up with previous_response_id, pinned")]
    public Task<int> FollowUpOn() => SendAsync(_on, ResponsesAddress, FollowUpBody);

    [Benchmark(Description = "(i0) create, answer read whole, affinity off")]
    public Task<int> CreateOff() => SendAsync(_off, ResponsesAddress, CreateBody);

    [Benchmark(Description = "(i) create, answer sniffed while read")]
    public Task<int> CreateOn() => SendAsync(_on, ResponsesAddress, CreateBody);

    private static PriorityRoutingStrategyOptions Options(IAffinityStore pins, bool enabled)
    {
        var options = new PriorityRoutingStrategyOptions { StateStore = new InMemoryBackendStateStore() };
        options.Affinity.Enabled = enabled;
        options.Affinity.Store = pins;
        for (var i = 0; i < 3; i++)
        {
            options.Backends.Add(new PriorityBackend { Name = $"backend{i}", BaseAddress = new Uri($"http://backend{i}/"), Priority = i == 0 ? 1 : 2 });
        }

        return options;
    }

    private async Task<int> SendAsync(HttpMessageInvoker invoker, string address, byte[]? body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, address);
        if (body is not null)
        {
            request.Content = new ByteArrayContent(body);
            request.Content.Headers.TryAddWithoutValidation("Content-Type", "application/json");
        }

        using var response = await invoker.SendAsync(request, CancellationToken.None).ConfigureAwait(false);
        var total = 0;
        if (response.Content is { } content)
        {
            var stream = await content.ReadAsStreamAsync().ConfigureAwait(false);
            await using (stream.ConfigureAwait(false))
            {
                int read;
                while ((read = await stream.ReadAsync(_copyBuffer).ConfigureAwait(false)) > 0)
                {
                    total += read;
                }
            }
        }

        return total;
    }

    /// <summary>Answers every request 200 with the same JSON body, as a stream (like a socket's content).</summary>
    private sealed class JsonAnswerHandler(byte[] answer) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var response = new HttpResponseMessage(HttpStatusCode.OK) { RequestMessage = request, Content = new StreamContent(new MemoryStream(answer, writable: false)) };
            response.Content.Headers.TryAddWithoutValidation("Content-Type", "application/json");
            return Task.FromResult(response);
        }
    }
}
