using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.DependencyInjection;
using Polly.PriorityRouting.Redis;
using StackExchange.Redis;

namespace Polly.PriorityRouting.Benchmarks;

/// <summary>
/// What a shared reservation adds to an attempt (<see cref="PriorityRoutingRedisStoreOptions.Reservations"/>): the same
/// chat request through the Redis store with reservations off and on, against a real local <c>redis-server</c>, and a
/// bare <c>PING</c> for what one round trip costs on the machine. The backend is in memory and reports no budget, so
/// every reservation is counted and none is refused or corrected: the difference is the one script per attempt.
/// </summary>
/// <remarks>
/// Needs a Redis at <c>PRIORITY_ROUTING_REDIS</c> (default <c>127.0.0.1:6390</c>):
/// <c>redis-server --port 6390 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes</c>.
/// </remarks>
[MemoryDiagnoser]
[MinColumn]
[MedianColumn]
public class ReservationBenchmarks
{
    private const string Address = "http://placeholder/openai/deployments/gpt/chat/completions?api-version=2024-10-21";

    private static readonly byte[] ChatBody = System.Text.Encoding.UTF8.GetBytes(
        "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"" + new string('x', 2000) + "\"}],\"max_tokens\":512}");

    private readonly string _configuration = Environment.GetEnvironmentVariable("PRIORITY_ROUTING_REDIS") ?? "127.0.0.1:6390";
    private ServiceProvider? _off;
    private ServiceProvider? _on;
    private ConnectionMultiplexer? _bare;
    private HttpMessageInvoker _reservationsOff = null!;
    private HttpMessageInvoker _reservationsOn = null!;

    [GlobalSetup]
    public void Setup()
    {
        (_off, _reservationsOff) = Start(reservations: false);
        (_on, _reservationsOn) = Start(reservations: true);
        _bare = ConnectionMultiplexer.Connect(_configuration);

        // Both stores connect in the background: route until the reserving one is asked through Redis.
        var store = (IBackendReservationStore)_on.GetRequiredService<IBackendStateStore>();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (store.ReserveAsync(new BackendStateKey("probe@http://probe"), 1, 0, 0, DateTimeOffset.UtcNow, default).AsTask().Result.Sequence == 0)
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException($"Redis at {_configuration} did not answer a reservation within 10 s.");
            }

            Thread.Sleep(50);
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _off?.Dispose();
        _on?.Dispose();
        _bare?.Dispose();
    }

    [Benchmark(Baseline = true, Description = "(r0) chat, Redis store, reservations off")]
    public Task<HttpResponseMessage> ReservationsOff() => SendChat(_reservationsOff);

    [Benchmark(Description = "(r) chat, Redis store, reservations on")]
    public Task<HttpResponseMessage> ReservationsOn() => SendChat(_reservationsOn);

    [Benchmark(Description = "(p) bare PING, one round trip")]
    public Task<TimeSpan> BarePing() => _bare!.GetDatabase().PingAsync();

    private static Task<HttpResponseMessage> SendChat(HttpMessageInvoker invoker)
        => invoker.SendAsync(
            new HttpRequestMessage(HttpMethod.Post, Address) { Content = new ByteArrayContent(ChatBody) { Headers = { ContentType = new("application/json") } } },
            CancellationToken.None);

    private (ServiceProvider Services, HttpMessageInvoker Invoker) Start(bool reservations)
    {
        var services = new ServiceCollection()
            .AddPriorityRoutingRedisStore(_configuration, options =>
            {
                options.KeyPrefix = $"bench:{Guid.NewGuid():N}:";
                options.Reservations = reservations;
                options.ReservationTimeout = TimeSpan.FromSeconds(1);
            });
        services.AddHttpClient("routed")
            .ConfigurePrimaryHttpMessageHandler(() => new InMemoryBackendHandler())
            .AddResilienceHandler("routed", (builder, context) =>
            {
                var options = new PriorityRoutingStrategyOptions { StateStore = context.ServiceProvider.GetRequiredService<IBackendStateStore>() };
                for (var i = 0; i < 3; i++)
                {
                    options.Backends.Add(new PriorityBackend { Name = $"backend{i}", BaseAddress = new Uri($"http://backend{i}/"), Priority = i == 0 ? 1 : 2 });
                }

                builder.AddPriorityRouting(options);
            });
        var provider = services.BuildServiceProvider();
        var invoker = new HttpMessageInvoker(provider.GetRequiredService<IHttpMessageHandlerFactory>().CreateHandler("routed"), disposeHandler: false);
        return (provider, invoker);
    }
}
