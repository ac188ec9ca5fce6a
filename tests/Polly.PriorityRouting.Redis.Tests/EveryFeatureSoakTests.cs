using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.Memory;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Polly.PriorityRouting.IntegrationTests.Soak;
using Polly.PriorityRouting.Redis.Tests.Support;
using Xunit.Abstractions;

namespace Polly.PriorityRouting.Redis.Tests;

/// <summary>The soak saturates the machine and restarts its redis-server: it runs alone.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class EveryFeatureSoakGroup
{
    public const string Name = "Every-feature soak";
}

/// <summary>
/// A bounded soak with every feature on: two app replicas (two service providers) on one redis-server, each with the
/// one-line handler bound to one reloadable <see cref="IConfiguration"/> (model maps, token budgets, queued waits,
/// first-byte and stream-stall timeouts, outlier ejection, affinity), sending chat completions (plain and streamed,
/// some with a soft key or hints), Responses creates, follow-ups (some on the other replica) and reads to three
/// Kestrel deployments on 127.0.0.1 that keep real state and budgets and throttle, fail, reset, stall and break streams.
/// Part-way, redis-server is killed and restarted twice and the configuration is reloaded.
/// </summary>
[Collection(EveryFeatureSoakGroup.Name)]
public sealed class EveryFeatureSoakTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const int Requests = 4_000;
    private const int Concurrency = 48;
    private const ulong Seed = 0x50A4_2026_1206UL;
    private const string ExhaustedHeader = "x-priority-routing-exhausted";
    private const int MaxRetryAttempts = 2;

    private static readonly TimeSpan LoadLimit = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan IdleTimeout = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan RedisDownFor = TimeSpan.FromSeconds(1.5);

    // How long after redis-server is back a replica may take to reconnect and publish the pins it kept meanwhile.
    private static readonly TimeSpan OutageSlack = TimeSpan.FromSeconds(3);

    private readonly List<SoakBackend> _backends = [];

    // Which backends each request reached (every attempt of every execution), by the id the client gives it.
    private readonly ConcurrentDictionary<string, ConcurrentQueue<string>> _calls = new(StringComparer.Ordinal);
    private RedisServerFixture _redis = null!;

    public async Task InitializeAsync()
    {
        _redis = new RedisServerFixture();
        (string Name, string Deployment)[] layout = [("ptu", "gpt-4o-ptu"), ("paygo-east", "gpt-4o"), ("paygo-west", "gpt-4o-2024-11-20")];
        for (var i = 0; i < layout.Length; i++)
        {
            _backends.Add(await SoakBackend.StartAsync(layout[i].Name, layout[i].Deployment, Seed ^ ((ulong)(i + 1) * 0x9E3779B97F4A7C15UL), _calls));
        }
    }

    public async Task DisposeAsync()
    {
        foreach (var backend in _backends)
        {
            await backend.DisposeAsync();
        }

        _redis.Dispose();
    }

    [Fact]
    public async Task Every_feature_on_two_replicas_redis_restarts_and_a_reload_end_in_success_or_honest_answers_and_leak_nothing()
    {
        var configuration = new ConfigurationBuilder().Add(new MemoryConfigurationSource { InitialData = Settings() }).Build();
        var connections = new ConnectionCounter();
        var prefix = "soak-" + Guid.NewGuid().ToString("N")[..8];
        await using var a = await SoakReplica.StartAsync(configuration, _redis.Configuration, prefix, connections, IdleTimeout);
        await using var b = await SoakReplica.StartAsync(configuration, _redis.Configuration, prefix, connections, IdleTimeout);
        SoakReplica[] replicas = [a, b];

        var outcomes = new ConcurrentDictionary<string, int>();
        var problems = new ConcurrentQueue<string>();
        var created = new ConcurrentQueue<(string Id, int Replica, DateTimeOffset At)>();
        var outages = new Outages();
        
        var memory = new List<(string When, long Bytes, long Timers)>();
        int next = -1, peak = 0, reloaded = 0;
        using var limit = new CancellationTokenSource(LoadLimit);
        var stopwatch = Stopwatch.StartNew();

        void Count(string outcome) => outcomes.AddOrUpdate(outcome, 1, (_, n) => n + 1);

        async Task WorkerAsync(int worker)
        {
            var random = new Random(unchecked((int)Seed) ^ worker);
            while (Interlocked.Increment(ref next) is var id && id < Requests && !limit.IsCancellationRequested)
            {
                var replica = (id + worker) % 2;
                try
                {
                    var outcome = await SendOneAsync(replicas, replica, id, random, created, outages, _calls, limit.Token);
                    if (outcome.StartsWith("problem:", StringComparison.Ordinal))
                    {
                        problems.Enqueue($"#{id} (replica {replica}): {outcome}");
                    }
                    else
                    {
                        Count(outcome);
                    }
                }
                catch (Exception e)
                {
                    problems.Enqueue($"#{id} (replica {replica}): {e.GetType().Name}: {e.Message}");
                }
            }
        }

        async Task ConductorAsync()
        {
            // Checkpoints and incidents by progress: warm-up, a Redis outage, a reload, another outage.
            await UntilAsync(() => next >= Requests / 10, limit.Token);
            memory.Add(Measure("after warm-up"));
            await UntilAsync(() => next >= Requests * 3 / 10, limit.Token);
            await OutageAsync(outages, limit.Token);
            await UntilAsync(() => next >= Requests / 2, limit.Token);
            configuration["PriorityRouting:Routing:Backends:2:Weight"] = "3";
            configuration["PriorityRouting:Routing:Affinity:StickyLifetime"] = "00:00:05";
            configuration.Reload();
            reloaded = 1;
            memory.Add(Measure("half-way (reloaded)"));
            await UntilAsync(() => next >= Requests * 7 / 10, limit.Token);
            await OutageAsync(outages, limit.Token);
        }

        async Task SampleConnectionsAsync()
        {
            while (next < Requests && !limit.IsCancellationRequested)
            {
                var open = connections.Open;
                if (open > peak)
                {
                    peak = open;
                }

                await Task.Delay(50);
            }
        }

        var conductor = Task.Run(ConductorAsync);
        var sampler = Task.Run(SampleConnectionsAsync);
        await Task.WhenAll(Enumerable.Range(0, Concurrency).Select(w => Task.Run(() => WorkerAsync(w))));
        var loadTime = stopwatch.Elapsed;
        await conductor;
        await sampler;

        var leftOpen = await connections.WaitForZeroAsync(TimeSpan.FromSeconds(15));
        await Eventually.HoldsAsync(() => replicas.All(r => r.Affinity.UnpublishedPinCount == 0), TimeSpan.FromSeconds(10), "every pin kept during an outage is published");
        memory.Add(Measure("end (idle)"));

        var total = outcomes.Values.Sum();
        var report = new StringBuilder();
        report.Append(CultureInfo.InvariantCulture, $"every-feature soak: {Requests} requests in {loadTime.TotalSeconds:F1} s ({Requests / loadTime.TotalSeconds:F0} req/s), 2 replicas, concurrency {Concurrency}, {outages.Count} Redis restarts, reloaded {reloaded}\n");
        report.Append("  outcomes: ").AppendJoin(", ", outcomes.OrderBy(o => o.Key, StringComparer.Ordinal).Select(o => $"{o.Key} {o.Value}")).Append(CultureInfo.InvariantCulture, $"; problems {problems.Count}\n");
        report.Append("  backends: ").AppendJoin("; ", _backends.Select(s => string.Create(CultureInfo.InvariantCulture, $"{s.Name} {s.Hits} hits, {s.Throttles} 429 + {s.BudgetThrottles} budget 429, {s.ServerErrors} 5xx, {s.Resets} resets, {s.Stalls} stalls, {s.Streams} streams ({s.AbortedStreams} aborted, {s.StalledStreams} stalled), {s.Created} responses"))).Append('\n');
        report.Append(CultureInfo.InvariantCulture, $"  connections: {connections.Opened} opened, peak {peak} open, {leftOpen} left open after the idle timeout\n");
        report.Append(CultureInfo.InvariantCulture, $"  pins: replica A {a.Affinity.Local.Count} ids + {a.Affinity.Local.StickyCount} soft keys, replica B {b.Affinity.Local.Count} + {b.Affinity.Local.StickyCount}; {created.Count} responses created\n");
        report.Append("  memory after a full GC (managed bytes, active timers): ").AppendJoin(", ", memory.Select(m => string.Create(CultureInfo.InvariantCulture, $"{m.When} {m.Bytes / 1024.0 / 1024.0:F1} MB / {m.Timers} timers")));
        output.WriteLine(report.ToString());
        foreach (var problem in problems.Take(20))
        {
            output.WriteLine(problem);
        }

        limit.IsCancellationRequested.Should().BeFalse($"the load must finish within {LoadLimit}");
        problems.Should().BeEmpty("every call ends in a success, an honest exhausted answer or an expected 4xx");
        _backends.SelectMany(s => s.Unexpected).Should().BeEmpty("no backend receives another's deployment, model or credential");
        total.Should().Be(Requests);
        outcomes.GetValueOrDefault("ok").Should().BeGreaterThan(Requests / 2, "the backends are healthy most of the time");
        outages.Count.Should().Be(2);
        reloaded.Should().Be(1);
        leftOpen.Should().Be(0, "every response was disposed, so every connection went idle and was closed");
        foreach (var replica in replicas)
        {
            replica.Affinity.Local.Count.Should().BeLessThanOrEqualTo(created.Count + Requests / 10, "pins are bounded by what was created");
            replica.Affinity.Local.StickyCount.Should().BeLessThanOrEqualTo(SoftKeys, "soft keys are bounded by the keys callers sent");
            replica.Options.Routing.Backends[2].Weight.Should().Be(3, "the reload reached the replica's options");
        }

        foreach (var backend in _backends)
        {
            backend.Throttles.Should().BePositive();
            backend.ServerErrors.Should().BePositive();
            backend.Resets.Should().BePositive();
            backend.AbortedStreams.Should().BePositive();
            backend.StalledStreams.Should().BePositive();
        }

        // Memory flat: what the load left after a full collection, against what the warm-up left.
        var growth = memory[^1].Bytes - memory[0].Bytes;
        growth.Should().BeLessThan(16 * 1024 * 1024, "nothing grows with the number of requests");
        memory[^1].Timers.Should().BeLessThanOrEqualTo(memory[0].Timers + 64, "timers are released with their requests and connections");
    }

    private const int SoftKeys = 16;

    private static async Task<string> SendOneAsync(
        SoakReplica[] replicas,
        int index,
        int id,
        Random random,
        ConcurrentQueue<(string Id, int Replica, DateTimeOffset At)> created,
        Outages outages,
        ConcurrentDictionary<string, ConcurrentQueue<string>> calls,
        CancellationToken cancellationToken)
    {
        var replica = replicas[index];
        var kind = random.Next(100);
        var sentAt = DateTimeOffset.UtcNow;
        using var request = kind switch
        {
            < 55 => Chat(id, random),
            < 70 => Create(id),
            < 90 when Pick(created, random) is { } target => FollowUp(target.Id, id),
            < 90 => Create(id),
            _ when Pick(created, random) is { } target => new HttpRequestMessage(HttpMethod.Get, $"https://placeholder/openai/v1/responses/{target.Id}"),
            _ => Create(id),
        };

        var requestId = id.ToString(CultureInfo.InvariantCulture);
        request.Headers.Add(SoakBackend.RequestIdHeader, requestId);

        // A follow-up or read of an id created on the other replica is a cross-replica use of a pin.
        var referenced = ReferencedId(request);
        var origin = referenced is null ? default : created.FirstOrDefault(c => c.Id == referenced);
        var crossReplica = referenced is not null && origin.Replica != index;
        using var response = await replica.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        var status = (int)response.StatusCode;
        // A pin lost with a Redis restart is routed as if unknown (documented): that request may reach any backend.
        var pinMayBeLost = crossReplica && outages.Spans(origin.At, sentAt, OutageSlack);
        // Taken out once checked: the test's own records must not grow with the load it measures.
        if (CheckCalls(request, pinMayBeLost ? null : referenced, calls.TryRemove(requestId, out var reached) ? [.. reached] : []) is { } misrouted)
        {
            return "problem: " + misrouted;
        }

        if (response.Headers.TryGetValues(ExhaustedHeader, out var flag) && flag.Single() == "true")
        {
            if (CheckExhausted(response, out var retryAfter) is { } wrong)
            {
                return "problem: " + wrong;
            }

            // A polite client waits as told before its next request.
            await Task.Delay(retryAfter > TimeSpan.FromSeconds(2) ? TimeSpan.FromSeconds(2) : retryAfter, cancellationToken);
            return status == 429 ? "exhausted 429" : "exhausted 503";
        }

        var backend = response.Headers.TryGetValues("x-backend", out var names) ? names.Single() : "?";
        if (request.Options.TryGetValue(PriorityRoutingRequestOptions.Hints, out var hints))
        {
            if (hints.MaxPriority == 1 && backend != "ptu")
            {
                return $"problem: MaxPriority 1 answered by {backend}";
            }

            if (hints.ExcludedBackends?.Contains(backend) == true)
            {
                return $"problem: an excluded backend answered: {backend}";
            }
        }

        if (status == 404 && referenced is not null)
        {
            // Affinity broken — unless the id was created on the other replica before a restart of this redis-server
            // (which keeps no data) and used after it: docs/distributed.md, "A Redis that restarts without persistence
            // loses the pins written before: replicas that have not seen those ids route them normally".
            return pinMayBeLost ? "404 cross-replica, pin lost with a Redis restart (documented)" : $"problem: 404 for {referenced} from {backend}{(crossReplica ? " (cross-replica)" : string.Empty)}";
        }

        if (status != 200)
        {
            return $"problem: {status} from {backend}: {await response.Content.ReadAsStringAsync(cancellationToken)}";
        }

        var plan = response.Headers.TryGetValues(SoakBackend.PlanHeader, out var plans) ? plans.Single() : "ok";
        string text;
        try
        {
            text = await response.Content.ReadAsStringAsync(cancellationToken);
        }
        catch (Exception e) when (e is IOException or HttpRequestException && plan == "abort")
        {
            return "stream aborted (as planned)";
        }

        if (plan == "abort")
        {
            return "problem: a stream the backend aborted read to its end";
        }

        if (request.RequestUri!.AbsolutePath.EndsWith("/chat/completions", StringComparison.Ordinal))
        {
            var streamed = text.StartsWith("data:", StringComparison.Ordinal);
            return !streamed || text.EndsWith("data: [DONE]\n\n", StringComparison.Ordinal) ? (plan == "stall" ? "ok (stalled stream)" : "ok") : $"problem: cut stream '{text}'";
        }

        using var json = JsonDocument.Parse(text);
        var newId = json.RootElement.GetProperty("id").GetString()!;
        if (request.Method == HttpMethod.Post)
        {
            created.Enqueue((newId, index, DateTimeOffset.UtcNow));
        }

        return "ok";
    }

    /// <summary>
    /// Every backend a request reached, over all its attempts and the handler's retries: hinted ones only allowed
    /// backends, and a follow-up or read only the backend that created its id (the id names it) — but for a pin lost
    /// with a Redis restart, which the 404 then tells. (NoFailover may send to its backend once per round of waits:
    /// EveryFeatureProperties judges it on a fake clock.)
    /// </summary>
    private static string? CheckCalls(HttpRequestMessage request, string? referenced, string[] reached)
    {
        if (request.Options.TryGetValue(PriorityRoutingRequestOptions.Hints, out var hints))
        {
            if (hints.MaxPriority == 1 && reached.Any(b => b != "ptu"))
            {
                return $"MaxPriority 1 reached [{string.Join(", ", reached)}]";
            }

            if (hints.ExcludedBackends is { } excluded && reached.Any(excluded.Contains))
            {
                return $"an excluded backend was reached: [{string.Join(", ", reached)}]";
            }
        }

        if (referenced is not null && reached.Length > 0 && reached.Distinct().Count() > 1)
        {
            return $"the request for {referenced} reached several backends: [{string.Join(", ", reached)}]";
        }

        return null;
    }

    private static HttpRequestMessage Chat(int id, Random random)
    {
        var stream = random.Next(3) == 0;
        var user = random.Next(4) == 0 ? $",\"user\":\"user-{random.Next(SoftKeys / 2)}\"" : string.Empty;
        var request = new HttpRequestMessage(HttpMethod.Post, "https://placeholder/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21")
        {
            Content = new StringContent(
                $$"""{"messages":[{"role":"user","content":"hello {{id}}"}],"max_tokens":{{200 + random.Next(800)}},"stream":{{(stream ? "true" : "false")}}{{user}}}""",
                Encoding.UTF8,
                "application/json"),
        };
        var hint = random.Next(20);
        PriorityRoutingHints? hints = hint switch
        {
            0 => new PriorityRoutingHints { MaxPriority = 1 },
            1 => new PriorityRoutingHints { ExcludedBackends = ["paygo-west"] },
            2 => new PriorityRoutingHints { NoFailover = true },
            3 => new PriorityRoutingHints { AffinityKey = $"session-{random.Next(SoftKeys / 2)}" },
            _ => null,
        };
        if (hints is not null)
        {
            request.Options.Set(PriorityRoutingRequestOptions.Hints, hints);
        }

        return request;
    }

    private static HttpRequestMessage Create(int id) => new(HttpMethod.Post, "https://placeholder/openai/v1/responses")
    {
        Content = new StringContent($$"""{"model":"gpt-4o","input":"hi {{id}}"}""", Encoding.UTF8, "application/json"),
    };

    private static HttpRequestMessage FollowUp(string previous, int id) => new(HttpMethod.Post, "https://placeholder/openai/v1/responses")
    {
        Content = new StringContent($$"""{"model":"gpt-4o","input":"more {{id}}","previous_response_id":"{{previous}}"}""", Encoding.UTF8, "application/json"),
    };

    private static (string Id, int Replica, DateTimeOffset At)? Pick(ConcurrentQueue<(string Id, int Replica, DateTimeOffset At)> created, Random random)
    {
        var all = created.ToArray();
        return all.Length == 0 ? null : all[random.Next(all.Length)];
    }

    private static string? ReferencedId(HttpRequestMessage request)
    {
        if (request.Method == HttpMethod.Get)
        {
            return request.RequestUri!.AbsolutePath.Split('/')[^1];
        }

        var body = request.Content is StringContent content ? content.ReadAsStringAsync().GetAwaiter().GetResult() : string.Empty;
        var at = body.IndexOf("\"previous_response_id\":\"", StringComparison.Ordinal);
        return at < 0 ? null : body[(at + 24)..body.IndexOf('"', at + 24)];
    }

    private static string? CheckExhausted(HttpResponseMessage response, out TimeSpan retryAfter)
    {
        retryAfter = TimeSpan.Zero;
        var status = (int)response.StatusCode;
        if (status is not (429 or 503) ||
            !response.Headers.TryGetValues("retry-after-ms", out var values) ||
            !long.TryParse(values.Single(), NumberStyles.None, CultureInfo.InvariantCulture, out var milliseconds) ||
            response.Headers.RetryAfter?.Delta is not { } delta)
        {
            return $"exhausted answer {status} without consistent headers";
        }

        retryAfter = TimeSpan.FromMilliseconds(milliseconds);
        var delay = milliseconds == 0 ? 0 : milliseconds - 2;
        return delta.TotalMilliseconds >= delay - 1 && delta.TotalMilliseconds < delay + 1000 ? null : $"Retry-After {delta} disagrees with retry-after-ms {milliseconds}";
    }

    private static (string When, long Bytes, long Timers) Measure(string when)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return (when, GC.GetTotalMemory(forceFullCollection: true), Timer.ActiveCount);
    }

    private static async Task UntilAsync(Func<bool> condition, CancellationToken cancellationToken)
    {
        while (!condition() && !cancellationToken.IsCancellationRequested)
        {
            await Task.Delay(20, CancellationToken.None);
        }
    }

    private async Task OutageAsync(Outages outages, CancellationToken cancellationToken)
    {
        var outage = outages.Begin();
        _redis.Kill();
        await Task.Delay(RedisDownFor, cancellationToken);
        _redis.Start();
        outages.End(outage);
    }

    private Dictionary<string, string?> Settings()
    {
        var settings = new Dictionary<string, string?>
        {
            ["PriorityRouting:Routing:DefaultCooldown"] = "00:00:00.2",
            ["PriorityRouting:Routing:MaxCooldown"] = "00:00:02",
            ["PriorityRouting:Routing:MaxQueueWait"] = "00:00:01",
            ["PriorityRouting:Routing:FirstByteTimeout"] = "00:00:01",
            ["PriorityRouting:Routing:StreamStallTimeout"] = "00:00:00.2",
            ["PriorityRouting:Routing:OutlierEjection:ConsecutiveFailures"] = "5",
            ["PriorityRouting:Routing:OutlierEjection:BaseEjectionTime"] = "00:00:01",
            ["PriorityRouting:Routing:OutlierEjection:MaxEjectionTime"] = "00:00:03",
            ["PriorityRouting:Routing:Affinity:StickyLifetime"] = "00:00:10",
            ["PriorityRouting:Retry:MaxRetryAttempts"] = MaxRetryAttempts.ToString(CultureInfo.InvariantCulture),
            ["PriorityRouting:TotalRequestTimeout:Timeout"] = "00:00:15",
            ["PriorityRouting:AttemptTimeout:Timeout"] = "00:00:00.5",
        };
        for (var i = 0; i < _backends.Count; i++)
        {
            var backend = _backends[i];
            var key = $"PriorityRouting:Routing:Backends:{i.ToString(CultureInfo.InvariantCulture)}:";
            settings[key + "Name"] = backend.Name;
            settings[key + "BaseAddress"] = backend.Address.ToString();
            settings[key + "Priority"] = i == 0 ? "1" : "2";
            settings[key + "Headers:api-key"] = backend.ApiKey;
            settings[key + "Models:gpt-4o"] = backend.Deployment;
        }

        return settings;
    }

    /// <summary>When redis-server was down (an outage in progress has no end yet).</summary>
    private sealed class Outages
    {
        private readonly List<(DateTimeOffset From, DateTimeOffset? To)> _outages = [];

        public int Count
        {
            get
            {
                lock (_outages)
                {
                    return _outages.Count(o => o.To is not null);
                }
            }
        }

        public int Begin()
        {
            lock (_outages)
            {
                _outages.Add((DateTimeOffset.UtcNow, null));
                return _outages.Count - 1;
            }
        }

        public void End(int outage)
        {
            lock (_outages)
            {
                _outages[outage] = (_outages[outage].From, DateTimeOffset.UtcNow);
            }
        }

        /// <summary>Whether a restart lies between a pin's creation and its use (its end plus the time to resynchronize).</summary>
        public bool Spans(DateTimeOffset created, DateTimeOffset used, TimeSpan slack)
        {
            lock (_outages)
            {
                return _outages.Any(o => created <= (o.To ?? DateTimeOffset.MaxValue - slack) + slack && used >= o.From);
            }
        }
    }

    /// <summary>One app replica: its own service provider, Redis store and client, bound to the shared configuration.</summary>
    private sealed class SoakReplica : IAsyncDisposable
    {
        private readonly ServiceProvider _services;

        private SoakReplica(ServiceProvider services)
        {
            _services = services;
            Client = services.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");
        }

        public HttpClient Client { get; }

        public RedisAffinityStore Affinity => (RedisAffinityStore)_services.GetRequiredService<IAffinityStore>();

        public PriorityRoutingHandlerOptions Options => _services.GetRequiredService<IOptionsMonitor<PriorityRoutingHandlerOptions>>().Get("aoai-priority-routing");

        public static async Task<SoakReplica> StartAsync(IConfiguration configuration, string redis, string prefix, ConnectionCounter connections, TimeSpan idleTimeout)
        {
            var services = new ServiceCollection().AddPriorityRoutingRedisStore(redis, options => options.KeyPrefix = prefix);
            services.AddHttpClient("aoai")
                .ConfigurePrimaryHttpMessageHandler(() => connections.CreateHandler(idleTimeout))
                .AddPriorityRoutingHandler(configuration.GetSection("PriorityRouting"));
            var replica = new SoakReplica(services.BuildServiceProvider());
            await ((RedisBackendStateStore)replica._services.GetRequiredService<IBackendStateStore>()).FirstSynchronization.WaitAsync(TimeSpan.FromSeconds(5));
            return replica;
        }

        public ValueTask DisposeAsync() => _services.DisposeAsync();
    }
}
