using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Polly.PriorityRouting.Redis.Tests.Support;
using Polly.PriorityRouting.SdkTests.Support;
using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis.Tests;

/// <summary>
/// Two replicas (two service providers, two multiplexers, the one-line handler) over one real redis-server and three
/// stateful fake backends: an id created through one replica is routed to its backend by the other, at once.
/// </summary>
public sealed class RedisAffinityTests : IClassFixture<RedisServerFixture>, IAsyncLifetime
{
    private readonly RedisServerFixture _redis;
    private readonly string _keyPrefix = $"test:{Guid.NewGuid():N}:";
    private FakeStatefulOpenAIBackend[] _backends = [];

    public RedisAffinityTests(RedisServerFixture redis) => _redis = redis;

    public async Task InitializeAsync()
        => _backends = await Task.WhenAll(FakeStatefulOpenAIBackend.StartAsync("a"), FakeStatefulOpenAIBackend.StartAsync("b"), FakeStatefulOpenAIBackend.StartAsync("c"));

    public async Task DisposeAsync()
    {
        foreach (var backend in _backends)
        {
            await backend.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_conversation_alternating_between_two_replicas_stays_on_its_backend_each_follow_up_sent_the_instant_the_previous_answer_arrived()
    {
        await using var replicaA = await AffinityReplica.StartAsync(_redis.Configuration, _keyPrefix, _backends);
        await using var replicaB = await AffinityReplica.StartAsync(_redis.Configuration, _keyPrefix, _backends);

        var previous = await replicaA.CreateAsync(null);
        var origin = OriginOf(previous);
        for (var i = 0; i < 20; i++)
        {
            var replica = i % 2 == 0 ? replicaB : replicaA;
            previous = await replica.CreateAsync(previous);
            OriginOf(previous).Should().Be(origin);
        }

        _backends.Where(b => b.Name != origin).Sum(b => b.Hits).Should().Be(0);
        _backends.Sum(b => b.NotFound).Should().Be(0);
        replicaB.Affinity.RemoteLookups.Should().Be(10, "B had seen none of the ids A created: one Redis read each");
        replicaA.Affinity.RemoteLookups.Should().Be(10);
    }

    [Fact]
    public async Task A_pin_is_one_redis_key_outside_the_throttle_prefix_that_expires_with_the_response()
    {
        await using var replica = await AffinityReplica.StartAsync(_redis.Configuration, _keyPrefix, _backends);
        await using var inspector = await ConnectionMultiplexer.ConnectAsync(_redis.Configuration);

        var id = await replica.CreateAsync(null);

        var key = "affinity:" + _keyPrefix + id;
        var value = await inspector.GetDatabase().StringGetWithExpiryAsync(key);
        ((string?)value.Value).Should().Be($"{OriginOf(id)}@{_backends.Single(b => b.Name == OriginOf(id)).Address.AbsoluteUri.TrimEnd('/')}");
        value.Expiry.Should().BeCloseTo(TimeSpan.FromDays(30), TimeSpan.FromMinutes(1));
        var server = inspector.GetServer(inspector.GetEndPoints()[0]);
        server.Keys(pattern: _keyPrefix + "*").Should().BeEmpty("the throttle store's SCAN never walks affinity keys");
    }

    [Fact]
    public async Task A_streamed_create_on_one_replica_routes_a_follow_up_from_the_other_before_the_stream_ends()
    {
        var pause = new TaskCompletionSource();
        foreach (var backend in _backends)
        {
            backend.StreamPause = pause.Task;
        }

        await using var replicaA = await AffinityReplica.StartAsync(_redis.Configuration, _keyPrefix, _backends);
        await using var replicaB = await AffinityReplica.StartAsync(_redis.Configuration, _keyPrefix, _backends);
        using var request = new HttpRequestMessage(HttpMethod.Post, "https://placeholder/v1/responses")
        {
            Content = new StringContent("""{"model":"gpt-4o","input":"hi","stream":true}""", Encoding.UTF8, "application/json"),
        };

        using var streamed = await replicaA.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await streamed.Content.ReadAsStreamAsync());
        (await reader.ReadLineAsync()).Should().Be("event: response.created");
        var data = (await reader.ReadLineAsync())!;
        using var created = JsonDocument.Parse(data["data: ".Length..]);
        var id = created.RootElement.GetProperty("response").GetProperty("id").GetString()!;

        var followUp = await replicaB.CreateAsync(id);

        OriginOf(followUp).Should().Be(OriginOf(id));
        pause.SetResult();
        (await reader.ReadToEndAsync()).Should().Contain("response.completed");
        _backends.Where(b => b.Name != OriginOf(id)).Sum(b => b.Hits).Should().Be(0);
    }

    [Fact]
    public async Task A_response_created_during_a_redis_outage_is_published_when_redis_returns_and_the_other_replica_routes_its_follow_up_there()
    {
        await using var replicaA = await AffinityReplica.StartAsync(_redis.Configuration, _keyPrefix, _backends);
        await using var replicaB = await AffinityReplica.StartAsync(_redis.Configuration, _keyPrefix, _backends);
        await using var outage = await RedisOutage.BeginAsync(_redis, replicaA, replicaB);

        var id = await replicaA.CreateAsync(null);
        replicaA.Affinity.UnpublishedPinCount.Should().Be(1, "the pin could not be written and waits for Redis");

        await outage.EndAsync();

        await using var inspector = await ConnectionMultiplexer.ConnectAsync(_redis.Configuration);
        var stored = await inspector.GetDatabase().StringGetWithExpiryAsync("affinity:" + _keyPrefix + id);
        ((string?)stored.Value).Should().Be(IdentityOf(OriginOf(id)), "replica A published the pin as soon as Redis returned");
        stored.Expiry.Should().BeCloseTo(TimeSpan.FromDays(30), TimeSpan.FromMinutes(1));
        replicaA.Affinity.UnpublishedPinCount.Should().Be(0);

        var lookups = replicaB.Affinity.RemoteLookups;
        var followUp = await replicaB.CreateAsync(id);

        OriginOf(followUp).Should().Be(OriginOf(id));
        (replicaB.Affinity.RemoteLookups - lookups).Should().Be(1, "B had never seen the id: one Redis read");
        _backends.Sum(b => b.NotFound).Should().Be(0);
        _backends.Where(b => b.Name != OriginOf(id)).Sum(b => b.Hits).Should().Be(0);
    }

    [Fact]
    public async Task A_response_deleted_during_a_redis_outage_is_not_published_when_redis_returns()
    {
        await using var replicaA = await AffinityReplica.StartAsync(_redis.Configuration, _keyPrefix, _backends);
        await using var outage = await RedisOutage.BeginAsync(_redis, replicaA);

        var deleted = await replicaA.CreateAsync(null);
        var kept = await replicaA.CreateAsync(null);
        using (var response = await replicaA.Client.DeleteAsync($"https://placeholder/openai/v1/responses/{deleted}"))
        {
            response.StatusCode.Should().Be(HttpStatusCode.OK, "the delete went to the response's backend");
        }

        replicaA.Affinity.UnpublishedPinCount.Should().Be(1);
        await outage.EndAsync();

        await using var inspector = await ConnectionMultiplexer.ConnectAsync(_redis.Configuration);
        var database = inspector.GetDatabase();
        (await database.KeyExistsAsync("affinity:" + _keyPrefix + kept)).Should().BeTrue("the other pin of the outage was published");
        (await database.KeyExistsAsync("affinity:" + _keyPrefix + deleted)).Should().BeFalse("a deleted id is never resurrected");
    }

    [Fact]
    public async Task A_soft_affinity_key_is_shared_under_a_key_of_its_own_that_slides_with_the_sticky_lifetime()
    {
        await using var replicaA = await AffinityReplica.StartAsync(_redis.Configuration, _keyPrefix, _backends);
        await using var replicaB = await AffinityReplica.StartAsync(_redis.Configuration, _keyPrefix, _backends);
        await using var inspector = await ConnectionMultiplexer.ConnectAsync(_redis.Configuration);
        var database = inspector.GetDatabase();
        var key = "affinity:" + _keyPrefix + "~user-1";

        var origin = OriginOf(await replicaA.CreateAsync(null, user: "user-1"));

        // The answer does not wait for a soft key: it is written right after.
        await Eventually.HoldsAsync(async () => await database.KeyExistsAsync(key), TimeSpan.FromSeconds(5), "the soft key reaches Redis");
        var stored = await database.StringGetWithExpiryAsync(key);
        ((string?)stored.Value).Should().Be(IdentityOf(origin));
        stored.Expiry.Should().BeCloseTo(TimeSpan.FromMinutes(10), TimeSpan.FromSeconds(30));

        var lookups = replicaB.Affinity.RemoteLookups;
        for (var i = 0; i < 5; i++)
        {
            OriginOf(await replicaB.CreateAsync(null, user: "user-1")).Should().Be(origin);
        }

        (replicaB.Affinity.RemoteLookups - lookups).Should().Be(1, "B read the key once, then kept it");
        replicaB.Affinity.Local.StickyCount.Should().Be(1);
        replicaB.Affinity.Local.Count.Should().Be(5, "the five responses B created, apart from the soft key");
    }

    private static string OriginOf(string id) => id.Split('_', '-')[1][..1];

    private string IdentityOf(string name) => $"{name}@{_backends.Single(b => b.Name == name).Address.AbsoluteUri.TrimEnd('/')}";

    /// <summary>Redis killed until <see cref="EndAsync"/> restarts it on the same port; every replica has noticed both.</summary>
    private sealed class RedisOutage : IAsyncDisposable
    {
        private static readonly TimeSpan Noticed = TimeSpan.FromSeconds(15);
        private readonly RedisServerFixture _redis;
        private readonly AffinityReplica[] _replicas;

        private RedisOutage(RedisServerFixture redis, AffinityReplica[] replicas) => (_redis, _replicas) = (redis, replicas);

        public static async Task<RedisOutage> BeginAsync(RedisServerFixture redis, params AffinityReplica[] replicas)
        {
            redis.Kill();
            await Eventually.HoldsAsync(() => replicas.All(r => r.State.IsInOutage), Noticed, "every replica notices the outage");
            return new RedisOutage(redis, replicas);
        }

        /// <summary>Restarts Redis and waits until every replica has synchronized again (published what it kept).</summary>
        public async Task EndAsync()
        {
            _redis.Start();
            await Eventually.HoldsAsync(
                () => _replicas.All(r => !r.State.IsInOutage && !r.State.IsSynchronizing), Noticed, "every replica synchronizes again");
        }

        public ValueTask DisposeAsync()
        {
            if (!_redis.IsRunning)
            {
                _redis.Start();
            }

            return default;
        }
    }

    /// <summary>One replica of an app: the Redis store and the one-line handler, over the given backends.</summary>
    private sealed class AffinityReplica : IAsyncDisposable
    {
        private readonly ServiceProvider _services;

        private AffinityReplica(ServiceProvider services)
        {
            _services = services;
            Client = services.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");
        }

        public HttpClient Client { get; }

        public RedisAffinityStore Affinity => (RedisAffinityStore)_services.GetRequiredService<IAffinityStore>();

        public RedisBackendStateStore State => (RedisBackendStateStore)_services.GetRequiredService<IBackendStateStore>();

        public static async Task<AffinityReplica> StartAsync(string configuration, string keyPrefix, FakeStatefulOpenAIBackend[] backends)
        {
            var services = new ServiceCollection().AddPriorityRoutingRedisStore(configuration, options => options.KeyPrefix = keyPrefix);
            services.AddHttpClient("aoai").AddPriorityRoutingHandler(options =>
            {
                foreach (var backend in backends)
                {
                    options.Routing.Backends.Add(new PriorityBackend { Name = backend.Name, BaseAddress = backend.Address });
                }
            });
            var replica = new AffinityReplica(services.BuildServiceProvider());
            var store = (RedisBackendStateStore)replica._services.GetRequiredService<IBackendStateStore>();
            await store.FirstSynchronization.WaitAsync(TimeSpan.FromSeconds(5));
            return replica;
        }

        /// <summary>Creates a response (chained to <paramref name="previous"/> if given) and returns its id.</summary>
        public async Task<string> CreateAsync(string? previous, string? user = null)
        {
            var body = previous is not null ? $$"""{"model":"gpt-4o","input":"more","previous_response_id":"{{previous}}"}"""
                : user is not null ? $$"""{"model":"gpt-4o","input":"hi","user":"{{user}}"}"""
                : """{"model":"gpt-4o","input":"hi"}""";
            using var response = await Client.PostAsync("https://placeholder/openai/v1/responses", new StringContent(body, Encoding.UTF8, "application/json"));
            response.StatusCode.Should().Be(HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
            using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            return json.RootElement.GetProperty("id").GetString()!;
        }

        public ValueTask DisposeAsync() => _services.DisposeAsync();
    }
}
