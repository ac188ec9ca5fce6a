using System.Net.Http.Headers;
using System.Text;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.DependencyInjection;

namespace Polly.PriorityRouting.Benchmarks;

/// <summary>
/// The cost of per-backend model names (<see cref="PriorityBackend.Models"/>) on a JSON body whose top-level
/// <c>"model"</c> comes last (the scan reads it all): the same request through the same 3-backend pool without maps,
/// with a map that renames the model on the chosen backend, and with a map that keeps its name.
/// </summary>
/// <remarks>
/// The transport serialises each body in full, as a socket would. Expected: one scan of the body and one extra buffer of
/// its size per request with a map (see the Allocated column), nothing extra without.
/// </remarks>
[MemoryDiagnoser]
[MinColumn]
[MedianColumn]
public class ModelRewriteBenchmarks
{
    private const string Address = "http://placeholder/openai/v1/chat/completions";

    private ServiceProvider? _services;
    private HttpMessageInvoker _noMap = null!;
    private HttpMessageInvoker _renamed = null!;
    private HttpMessageInvoker _sameName = null!;
    private byte[] _body = null!;

    [Params(4 * 1024, 400 * 1024)]
    public int BodyBytes { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var filler = new string('x', BodyBytes - 80);
        _body = Encoding.UTF8.GetBytes("{\"messages\":[{\"role\":\"user\",\"content\":\"" + filler + "\"}],\"temperature\":1,\"model\":\"gpt-4o\"}");

        var services = new ServiceCollection();
        Add(services, "noMap", null);
        Add(services, "renamed", "gpt-4o-ptu");
        Add(services, "sameName", "gpt-4o");
        _services = services.BuildServiceProvider();
        var factory = _services.GetRequiredService<IHttpMessageHandlerFactory>();
        _noMap = new HttpMessageInvoker(factory.CreateHandler("noMap"), disposeHandler: false);
        _renamed = new HttpMessageInvoker(factory.CreateHandler("renamed"), disposeHandler: false);
        _sameName = new HttpMessageInvoker(factory.CreateHandler("sameName"), disposeHandler: false);
    }

    [GlobalCleanup]
    public void Cleanup() => _services?.Dispose();

    [Benchmark(Baseline = true, Description = "(m0) no map: body sent as is")]
    public Task<HttpResponseMessage> NoMap() => Send(_noMap);

    [Benchmark(Description = "(m1) map renames the model: scan + one buffer + spliced body")]
    public Task<HttpResponseMessage> Renamed() => Send(_renamed);

    [Benchmark(Description = "(m2) map keeps the name: scan + one buffer, body sent as is")]
    public Task<HttpResponseMessage> SameName() => Send(_sameName);

    private static void Add(IServiceCollection services, string name, string? ptuName)
        => services.AddHttpClient(name)
            .ConfigurePrimaryHttpMessageHandler(() => new BodySinkHandler())
            .AddResilienceHandler(name, b => b.AddPriorityRouting(Options(ptuName)));

    private static PriorityRoutingStrategyOptions Options(string? ptuName)
    {
        var options = new PriorityRoutingStrategyOptions { StateStore = new InMemoryBackendStateStore() };
        for (var i = 0; i < 3; i++)
        {
            var backend = new PriorityBackend { Name = $"backend{i}", BaseAddress = new Uri($"http://backend{i}/"), Priority = i == 0 ? 1 : 2 };
            if (ptuName is not null)
            {
                backend.Models["gpt-4o"] = i == 0 ? ptuName : "gpt-4o";
            }

            options.Backends.Add(backend);
        }

        return options;
    }

    private Task<HttpResponseMessage> Send(HttpMessageInvoker invoker)
    {
        var content = new ByteArrayContent(_body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return invoker.SendAsync(new HttpRequestMessage(HttpMethod.Post, Address) { Content = content }, CancellationToken.None);
    }
}
