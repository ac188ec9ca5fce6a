using System.Diagnostics.Metrics;
using System.Globalization;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Polly.PriorityRouting.Redis.Tests.Support;

namespace Polly.PriorityRouting.Redis.Tests;

/// <summary>
/// <see cref="PriorityRoutingStrategyOptions.MaxQueueWait"/> meeting the shared reservations of a real Redis: a replica
/// whose requests the shared budget refuses (its peer spent the window) waits for the refill instead of answering 429,
/// and reserves again then. Real time throughout: the refill is the backend's and redis-server's, not a fake clock's.
/// </summary>
public sealed class RedisReservationWaitTests : IClassFixture<RedisServerFixture>
{
    private const long Cost = 1_000;
    // Long enough that a stalled test machine (between A's last request and B's) cannot reach the refill before B asks:
    // B must be refused once for the test to mean anything.
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(8);
    private static readonly TimeSpan Flushed = TimeSpan.FromSeconds(5);

    private readonly RedisServerFixture _redis;

    public RedisReservationWaitTests(RedisServerFixture redis) => _redis = redis;

    [Fact]
    public async Task A_caller_of_a_replica_whose_peer_spent_the_shared_budget_waits_for_the_refill_and_is_served_without_a_backend_429()
    {
        var prefix = RedisReservationTests.NewPrefix();
        await using var backend = await TokenBudgetBackend.StartAsync(limit: 3 * Cost, Window, TimeSpan.FromMilliseconds(100));
        await using var hostA = await StartReplicaAsync(prefix, backend);
        await using var hostB = await StartReplicaAsync(prefix, backend);
        using var refusedA = RefusalsOf(hostA);
        using var refusedB = RefusalsOf(hostB);
        var (clientA, clientB) = (hostA.CreateClient(), hostB.CreateClient());
        await TokenBudgetBackend.WarmUpAsync(clientA);
        await TokenBudgetBackend.WarmUpAsync(clientB);

        // A learns the budget with one request, then spends the rest of the window with two more.
        var statuses = new List<HttpStatusCode>(await Wave(clientA, 1));
        await Eventually.HoldsAsync(() => hostA.RedisStore.Reservations!.Flushed >= 1, Flushed, "the first answer corrects the shared budget");
        statuses.AddRange(await Wave(clientA, 2));
        backend.Admitted.Should().Be(3, "A's three requests fill the 3,000 tokens of the first window");
        await Eventually.HoldsAsync(() => hostA.RedisStore.Reservations!.Flushed >= 2, Flushed, "the last answers correct the shared budget");

        // The shared budget refuses B's caller (whatever B's view learned of A's answers): it waits for the refill.
        statuses.AddRange(await Wave(clientB, 1).WaitAsync(TimeSpan.FromSeconds(30)));

        statuses.Should().Equal(HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK);
        backend.Admitted.Should().Be(4, "B's caller is served once, from the refill");
        backend.Throttled.Should().Be(0, "B's caller was not sent before the refill");
        refusedA.GetMeasurementSnapshot().Should().BeEmpty();
        var refusals = refusedB.GetMeasurementSnapshot();
        refusals.Select(m => m.Value).Should().Equal([1L], "B's caller was refused once, then waited and reserved again");
        refusals.Should().OnlyContain(m => (string?)m.Tags["backend.name"] == "backend-1" && !m.Tags.ContainsKey("request.class"));
    }

    /// <summary>A replica routing to one token-budgeted backend, reserving on the shared budget, waiting up to 15 s.</summary>
    private Task<Replica> StartReplicaAsync(string prefix, TokenBudgetBackend backend)
        => Replica.StartAsync(_redis.Configuration, prefix, DateTimeOffset.UtcNow, services =>
        {
            services.AddSingleton(TimeProvider.System);
            services.AddMetrics();
            services.Configure<PriorityRoutingRedisStoreOptions>(options =>
            {
                options.Reservations = true;
                options.ReservationTimeout = TimeSpan.FromSeconds(1);
            });
            services.AddHttpClient(RoutedHost.ClientName)
                .AddResilienceHandler("priority", (builder, context) => builder.AddPriorityRouting(new PriorityRoutingStrategyOptions
                {
                    StateStore = context.ServiceProvider.GetRequiredService<IBackendStateStore>(),
                    MeterFactory = context.ServiceProvider.GetRequiredService<IMeterFactory>(),
                    Backends = [new PriorityBackend { Name = "backend-1", BaseAddress = backend.BaseAddress, Priority = 1 }],
                    RequestCost = request => request.Headers.TryGetValues(TokenBudgetBackend.CostHeader, out var cost) ? long.Parse(cost.Single(), CultureInfo.InvariantCulture) : 0,
                    MaxQueueWait = TimeSpan.FromSeconds(15),
                }));
        });

    private static MetricCollector<long> RefusalsOf(Replica replica)
        => new(replica.Services.GetRequiredService<IMeterFactory>(), "Polly.PriorityRouting", "priority_routing.reservations.refused");

    private static async Task<HttpStatusCode[]> Wave(HttpClient client, int count)
        => await Task.WhenAll(Enumerable.Range(0, count).Select(async _ =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, RoutedHost.AnyPath) { Content = new StringContent("{}") };
            request.Headers.Add(TokenBudgetBackend.CostHeader, Cost.ToString(CultureInfo.InvariantCulture));
            using var response = await client.SendAsync(request);
            return response.StatusCode;
        }));
}
