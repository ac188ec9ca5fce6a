using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Http.Resilience;

namespace Polly.PriorityRouting.Benchmarks;

/// <summary>
/// The cost per request of each way to call rate-limited backends, over the same in-memory transport, in one run so
/// that the ratios to the empty pipeline are read side by side.
/// </summary>
/// <remarks>
/// Min and median are shown next to the mean: on a shared machine other processes only ever add time, so the minimum
/// is the steadiest estimate of the code's own cost.
/// </remarks>
[MemoryDiagnoser]
[MinColumn]
[MedianColumn]
public class RoutingBenchmarks
{
    private const int RequestsPerThread = 256;
    // A typical chat completion: a system prompt, one user message of about 500 tokens, an output cap.
    private static readonly byte[] ChatBody = System.Text.Encoding.UTF8.GetBytes(
        "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\",\"content\":\"You are a helpful assistant.\"},{\"role\":\"user\",\"content\":\"" +
        string.Concat(Enumerable.Repeat("Summarise the following paragraph in one sentence. ", 40)) + "\"}],\"max_tokens\":512,\"temperature\":0.2}");

    private const string PlaceholderAddress = "http://placeholder/openai/deployments/gpt/chat/completions?api-version=2024-10-21";

    private ServiceProvider? _services;
    private HttpMessageInvoker _empty = null!;
    private HttpMessageInvoker _passThrough = null!;
    private HttpMessageInvoker _standard = null!;
    private HttpMessageInvoker _hedging = null!;
    private HttpMessageInvoker _ours3 = null!;
    private HttpMessageInvoker _ours64 = null!;
    private HttpMessageInvoker _oursOneThrottled = null!;
    private HttpMessageInvoker _ours3BudgetsOff = null!;
    private HttpMessageInvoker _oursBudgetHeaders = null!;
    private HttpMessageInvoker _oursBudgetHeadersOff = null!;

    [GlobalSetup]
    public void Setup()
    {
        var services = new ServiceCollection();

        AddClient(services, "empty").AddResilienceHandler("empty", _ => { });
        AddClient(services, "passThrough").AddResilienceHandler("passThrough", b => b.AddStrategy(_ => new PassThroughStrategy(), new PassThroughOptions()));
        AddClient(services, "standard").AddStandardResilienceHandler();
        AddClient(services, "hedging").AddStandardHedgingHandler(routing => routing.ConfigureOrderedGroups(options =>
        {
            foreach (var uri in BackendAddresses(3))
            {
                options.Groups.Add(new UriEndpointGroup { Endpoints = { new WeightedUriEndpoint { Uri = uri } } });
            }
        }));
        AddClient(services, "ours3").AddResilienceHandler("ours3", b => b.AddPriorityRouting(RoutingOptions(3, PtuThenPayAsYouGo)));

        // The selector's worst happy path: every backend in one tier, so each pick weighs all 64 against the store.
        AddClient(services, "ours64").AddResilienceHandler("ours64", b => b.AddPriorityRouting(RoutingOptions(64, _ => 1)));

        // Backend 0, alone at priority 1, always answers 429: each request fails over once to a priority-2 backend.
        AddClient(services, "oursOneThrottled", throttledHost: "backend0")
            .AddResilienceHandler("oursOneThrottled", b => b.AddPriorityRouting(RoutingOptions(3, PtuThenPayAsYouGo)));

        // Token budgets off: the strategy exactly as it routed before the budget view.
        AddClient(services, "ours3BudgetsOff").AddResilienceHandler("ours3BudgetsOff", b => b.AddPriorityRouting(WithoutBudgets(RoutingOptions(3, PtuThenPayAsYouGo))));

        // A chat body and answers that report their budgets: the estimate, admission and the view's reads all run.
        AddClient(services, "oursBudgetHeaders", budgetHeaders: true).AddResilienceHandler("oursBudgetHeaders", b => b.AddPriorityRouting(RoutingOptions(3, PtuThenPayAsYouGo)));
        AddClient(services, "oursBudgetHeadersOff", budgetHeaders: true)
            .AddResilienceHandler("oursBudgetHeadersOff", b => b.AddPriorityRouting(WithoutBudgets(RoutingOptions(3, PtuThenPayAsYouGo))));

        _services = services.BuildServiceProvider();
        var factory = _services.GetRequiredService<IHttpMessageHandlerFactory>();
        _empty = new HttpMessageInvoker(factory.CreateHandler("empty"), disposeHandler: false);
        _passThrough = new HttpMessageInvoker(factory.CreateHandler("passThrough"), disposeHandler: false);
        _standard = new HttpMessageInvoker(factory.CreateHandler("standard"), disposeHandler: false);
        _hedging = new HttpMessageInvoker(factory.CreateHandler("hedging"), disposeHandler: false);
        _ours3 = new HttpMessageInvoker(factory.CreateHandler("ours3"), disposeHandler: false);
        _ours64 = new HttpMessageInvoker(factory.CreateHandler("ours64"), disposeHandler: false);
        _oursOneThrottled = new HttpMessageInvoker(factory.CreateHandler("oursOneThrottled"), disposeHandler: false);
        _ours3BudgetsOff = new HttpMessageInvoker(factory.CreateHandler("ours3BudgetsOff"), disposeHandler: false);
        _oursBudgetHeaders = new HttpMessageInvoker(factory.CreateHandler("oursBudgetHeaders"), disposeHandler: false);
        _oursBudgetHeadersOff = new HttpMessageInvoker(factory.CreateHandler("oursBudgetHeadersOff"), disposeHandler: false);
    }

    [GlobalCleanup]
    public void Cleanup() => _services?.Dispose();

    [Benchmark(Baseline = true, Description = "(a) empty resilience pipeline")]
    public Task<HttpResponseMessage> EmptyPipeline() => Send(_empty);

    [Benchmark(Description = "(a') one pass-through strategy")]
    public Task<HttpResponseMessage> PassThroughPipeline() => Send(_passThrough);

    [Benchmark(Description = "(b) standard resilience handler")]
    public Task<HttpResponseMessage> StandardResilienceHandler() => Send(_standard);

    [Benchmark(Description = "(c) hedging, ordered groups x3")]
    public Task<HttpResponseMessage> HedgingOrderedGroups() => Send(_hedging);

    [Benchmark(Description = "(d) priority routing, 3 backends")]
    public Task<HttpResponseMessage> PriorityRouting3() => Send(_ours3);

    [Benchmark(Description = "(d') priority routing, 3 backends, token budgets off")]
    public Task<HttpResponseMessage> PriorityRouting3BudgetsOff() => Send(_ours3BudgetsOff);

    [Benchmark(Description = "(h) priority routing, 3 backends, chat body, budget headers")]
    public Task<HttpResponseMessage> PriorityRoutingBudgetHeaders() => SendChat(_oursBudgetHeaders);

    [Benchmark(Description = "(h') priority routing, 3 backends, chat body, budget headers, token budgets off")]
    public Task<HttpResponseMessage> PriorityRoutingBudgetHeadersOff() => SendChat(_oursBudgetHeadersOff);

    // Issue 19's POST: the defaults (budgets and affinity on), a 2 KB chat body read once, answers without budget headers.
    [Benchmark(Description = "(i) priority routing, 3 backends, POST with a 2 KB chat body")]
    public Task<HttpResponseMessage> PriorityRouting3ChatBody() => SendChat(_ours3);

    [Benchmark(Description = "(e) priority routing, 64 backends, one tier")]
    public Task<HttpResponseMessage> PriorityRouting64() => Send(_ours64);

    [Benchmark(Description = "(f) priority routing, 1 failover")]
    public Task<HttpResponseMessage> PriorityRoutingOneFailover() => Send(_oursOneThrottled);

    [Benchmark(OperationsPerInvoke = 2 * RequestsPerThread, Description = "(g) priority routing, 3 backends, 2 threads")]
    public Task PriorityRoutingTwoThreads() => Task.WhenAll(
        Task.Run(() => SendMany(_ours3)),
        Task.Run(() => SendMany(_ours3)));

    private static async Task SendMany(HttpMessageInvoker invoker)
    {
        for (var i = 0; i < RequestsPerThread; i++)
        {
            await Send(invoker).ConfigureAwait(false);
        }
    }

    private static Task<HttpResponseMessage> Send(HttpMessageInvoker invoker)
        => invoker.SendAsync(new HttpRequestMessage(HttpMethod.Post, PlaceholderAddress), CancellationToken.None);

    private static Task<HttpResponseMessage> SendChat(HttpMessageInvoker invoker)
        => invoker.SendAsync(
            new HttpRequestMessage(HttpMethod.Post, PlaceholderAddress) { Content = new ByteArrayContent(ChatBody) { Headers = { ContentType = new("application/json") } } },
            CancellationToken.None);

    private static PriorityRoutingStrategyOptions WithoutBudgets(PriorityRoutingStrategyOptions options)
    {
        options.TokenBudgets = false;
        return options;
    }

    private static IHttpClientBuilder AddClient(IServiceCollection services, string name, string? throttledHost = null, bool budgetHeaders = false)
        => services.AddHttpClient(name).ConfigurePrimaryHttpMessageHandler(() =>
        {
            var handler = new InMemoryBackendHandler { BudgetHeaders = budgetHeaders };
            if (throttledHost is not null)
            {
                handler.ThrottledHosts.Add(throttledHost);
            }

            return handler;
        });

    private static IEnumerable<Uri> BackendAddresses(int count)
        => Enumerable.Range(0, count).Select(i => new Uri($"http://backend{i}/"));

    // Backend 0 alone at priority 1 (a PTU), the rest at priority 2 (pay-as-you-go).
    private static int PtuThenPayAsYouGo(int index) => index == 0 ? 1 : 2;

    private static PriorityRoutingStrategyOptions RoutingOptions(int backendCount, Func<int, int> priorityOf)
    {
        var options = new PriorityRoutingStrategyOptions { StateStore = new InMemoryBackendStateStore() };
        var index = 0;
        foreach (var address in BackendAddresses(backendCount))
        {
            options.Backends.Add(new PriorityBackend { Name = $"backend{index}", BaseAddress = address, Priority = priorityOf(index) });
            index++;
        }

        return options;
    }
}
