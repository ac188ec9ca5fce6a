using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using Microsoft.Extensions.Http.Resilience;
using Polly;
using Polly.PriorityRouting;
using PriorityRouting.Demo;

if (!DemoOptions.TryParse(args, out var options, out var error))
{
    if (!string.IsNullOrEmpty(error))
    {
        Console.Error.WriteLine(error);
    }

    Console.Error.WriteLine(DemoOptions.Usage);
    return string.IsNullOrEmpty(error) ? 0 : 2;
}

var specs = FakeBackendSpec.Default;
Console.WriteLine("Polly.PriorityRouting demo: fake Azure OpenAI deployments on 127.0.0.1, each limited by a token bucket.");
foreach (var spec in specs)
{
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"  {spec.Name,-12} priority {spec.Priority}  {spec.RequestsPerMinute} requests/min ({spec.RequestsPerSecond:0.#}/s)"));
}

Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"Offered load: {options.Rate:0.#} requests/s for {options.Duration.TotalSeconds:0.#} s, at most {options.Concurrency} in flight, per scenario."));
Console.WriteLine();

if (options.RedisConfiguration is { } redis)
{
    return await CompareReplicasAsync(redis);
}

var routed = await RunScenarioAsync(
    "priority routing (3 backends)",
    replicas: 1,
    backends => services => AddPriorityRoutingClient(
        services.AddSingleton<IBackendStateStore>(new InMemoryBackendStateStore()), backends));

var baseline = await RunScenarioAsync(
    "standard handler (ptu only)",
    replicas: 1,
    backends => services => services
        .AddHttpClient("aoai", c => c.BaseAddress = backends[0].Address)
        .AddStandardResilienceHandler());

Console.WriteLine();
ResultsTable.Print([routed, baseline]);
SpilloverChart.Save(options.ChartPath, routed, baseline, options.Rate);
Console.WriteLine();
Console.WriteLine($"Chart of answers per second per backend (200s stacked, 429s below): {Path.GetFullPath(options.ChartPath)}");
return 0;

// The same priority-routing burst from N in-process replicas (N containers, each with its own IHttpClientFactory client
// and its own store): once sharing throttle state through Redis, once with a private in-memory store each.
async Task<int> CompareReplicasAsync(string redis)
{
    if (await RedisProbe.ReportAsync(redis) is not { } reachable)
    {
        return 2;
    }

    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"{options.Replicas} replicas share the offered load: {options.Rate / options.Replicas:0.##} requests/s each."));
    Console.WriteLine();

    // A fresh key prefix per run: no deadline left by an earlier run (or another app on this Redis) is loaded.
    var keyPrefix = $"polly-priority-routing-demo:{Guid.NewGuid():N}:";
    var shared = await RunScenarioAsync(
        $"{options.Replicas} replicas, one Redis store",
        options.Replicas,
        backends => services => AddPriorityRoutingClient(
            services.AddPriorityRoutingRedisStore(redis, o => o.KeyPrefix = keyPrefix), backends));

    var separate = await RunScenarioAsync(
        $"{options.Replicas} replicas, in-memory stores",
        options.Replicas,
        backends => services => AddPriorityRoutingClient(
            services.AddSingleton<IBackendStateStore>(new InMemoryBackendStateStore()), backends));

    Console.WriteLine();
    ResultsTable.Print([shared, separate]);
    Console.WriteLine();
    if (!reachable)
    {
        Console.WriteLine("Redis was unreachable at the start: the Redis column shows the stores failing open, not sharing.");
    }

    Console.WriteLine("(No chart with --redis: the chart compares priority routing with the standard handler.)");
    return 0;
}

async Task<ScenarioResult> RunScenarioAsync(
    string title,
    int replicas,
    Func<IReadOnlyList<FakeAzureOpenAiBackend>, Action<IServiceCollection>> configureClient)
{
    Console.WriteLine($"== {title} ==");

    // Fresh backends per scenario: full token buckets and clean counters, so both scenarios start equal.
    var start = Stopwatch.GetTimestamp();
    var backends = new List<FakeAzureOpenAiBackend>();
    foreach (var spec in specs)
    {
        backends.Add(await FakeAzureOpenAiBackend.StartAsync(spec, start));
    }

    var providers = new List<ServiceProvider>();
    using var metrics = options.Metrics ? new RoutingMetricsPrinter(specs) : null;
    try
    {
        for (var i = 0; i < replicas; i++)
        {
            var services = new ServiceCollection();
            configureClient(backends)(services);
            // The client side is a plain container, not the web app's: ASP0000 (a second copy of singletons) does not apply.
#pragma warning disable ASP0000
            providers.Add(services.BuildServiceProvider());
#pragma warning restore ASP0000
        }

        // Resolve the stores now: a Redis store starts connecting and loading in the background when it is created;
        // half a second lets every replica subscribe before the burst, as long-running replicas would have.
        var stores = providers.Select(p => p.GetService<IBackendStateStore>()).ToList();
        if (stores.Any(store => store is not null and not InMemoryBackendStateStore))
        {
            await Task.Delay(TimeSpan.FromMilliseconds(500));
        }

        var clients = providers.Select(p => p.GetRequiredService<IHttpClientFactory>().CreateClient("aoai")).ToList();
        var burst = await new BurstDriver(options, backends, metrics is null ? null : metrics.PrintProgress).RunAsync(clients);
        metrics?.PrintSummary(title);

        return new ScenarioResult(title, burst, backends);
    }
    finally
    {
        foreach (var provider in providers)
        {
            await provider.DisposeAsync();
        }

        foreach (var backend in backends)
        {
            await backend.DisposeAsync();
        }
    }
}

// The README's client: an outer retry that honours Retry-After, priority routing, an attempt timeout. The store and the
// meter come from the container: IBackendStateStore as registered by the scenario, IMeterFactory from AddMetrics.
static IServiceCollection AddPriorityRoutingClient(IServiceCollection services, IReadOnlyList<FakeAzureOpenAiBackend> backends)
{
    services
        .AddMetrics()
        .AddHttpClient("aoai", c => c.BaseAddress = new Uri("http://placeholder/"))
        .AddResilienceHandler("aoai", (b, context) => b
            .AddRetry(new HttpRetryStrategyOptions { ShouldRetryAfterHeader = true })
            .AddPriorityRouting(new PriorityRoutingStrategyOptions
            {
                Backends = [.. backends.Select(backend => new PriorityBackend
                {
                    Name = backend.Spec.Name,
                    BaseAddress = backend.Address,
                    Priority = backend.Spec.Priority,
                })],
                StateStore = context.ServiceProvider.GetRequiredService<IBackendStateStore>(),
                MeterFactory = context.ServiceProvider.GetRequiredService<IMeterFactory>(),
            })
            .AddTimeout(TimeSpan.FromSeconds(10)));
    return services;
}
