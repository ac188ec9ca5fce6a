using System.Diagnostics;
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

var routed = await RunScenarioAsync(
    "priority routing (3 backends)",
    backends => services => services
        .AddHttpClient("aoai", c => c.BaseAddress = new Uri("http://placeholder/"))
        .AddResilienceHandler("aoai", b => b
            .AddRetry(new HttpRetryStrategyOptions { ShouldRetryAfterHeader = true })
            .AddPriorityRouting(new PriorityRoutingStrategyOptions
            {
                Backends = [.. backends.Select(backend => new PriorityBackend
                {
                    Name = backend.Spec.Name,
                    BaseAddress = backend.Address,
                    Priority = backend.Spec.Priority,
                })],
                StateStore = CreateStateStore(options),
            })
            .AddTimeout(TimeSpan.FromSeconds(10))));

var baseline = await RunScenarioAsync(
    "standard handler (ptu only)",
    backends => services => services
        .AddHttpClient("aoai", c => c.BaseAddress = backends[0].Address)
        .AddStandardResilienceHandler());

Console.WriteLine();
ResultsTable.Print([routed, baseline]);
SpilloverChart.Save(options.ChartPath, routed, baseline);
Console.WriteLine();
Console.WriteLine($"Chart of requests per second per backend: {Path.GetFullPath(options.ChartPath)}");
return 0;

async Task<ScenarioResult> RunScenarioAsync(
    string title,
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

    try
    {
        var services = new ServiceCollection();
        configureClient(backends)(services);
        // The client side is a plain container, not the web app's: ASP0000 (a second copy of singletons) does not apply.
#pragma warning disable ASP0000
        await using var provider = services.BuildServiceProvider();
#pragma warning restore ASP0000
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");
        var burst = await new BurstDriver(options, backends).RunAsync(client);
        return new ScenarioResult(title, burst, backends);
    }
    finally
    {
        foreach (var backend in backends)
        {
            await backend.DisposeAsync();
        }
    }
}

static IBackendStateStore CreateStateStore(DemoOptions options)
{
    // ─── Future: --redis <configuration> ─────────────────────────────────────────────────────────────────────
    // Replace this branch with the Redis-backed store of Polly.PriorityRouting.Redis once it ships, so that
    // several demo processes learn each other's 429s.
    if (options.RedisConfiguration is not null)
    {
        Console.WriteLine("Note: --redis is not available yet; using the in-memory store.");
    }

    return new InMemoryBackendStateStore();
}
