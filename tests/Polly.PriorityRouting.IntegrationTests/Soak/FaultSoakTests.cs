using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using Polly.PriorityRouting.IntegrationTests.Support;
using Xunit.Abstractions;

namespace Polly.PriorityRouting.IntegrationTests.Soak;

/// <summary>The soak saturates the machine: it runs alone, after the other tests, so their timings are not disturbed.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SoakTestGroup
{
    public const string Name = "Soak";
}

/// <summary>
/// A bounded load and fault soak on loopback: 20,000 requests at concurrency 256 through an <see cref="IHttpClientFactory"/>
/// client (priority routing, then a 250 ms attempt timeout) over four Kestrel backends in two tiers that throttle, fail,
/// reset, hang and stream at random (seeded).
/// </summary>
[Collection(SoakTestGroup.Name)]
public sealed class FaultSoakTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const int Requests = 20_000;
    private const int Concurrency = 256;
    // With this seed every kind of fault falls within the first 751 hits of every backend (each gets 2,000+ hits in a
    // run), so "every fault happened on every backend" holds whatever the interleaving.
    private const ulong Seed = 0x5EED_2026_11B1UL;

    // The library's wire names (internal there, and the exhausted answer's contract with every client).
    private const string ExhaustedHeader = "x-priority-routing-exhausted";
    private const string RetryAfterMillisecondsHeader = "retry-after-ms";

    private static readonly TimeSpan AttemptTimeout = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan DefaultCooldown = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan MaxCooldown = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan LoadLimit = TimeSpan.FromSeconds(90);
    private static readonly TimeSpan IdleTimeout = TimeSpan.FromSeconds(1);

    // The longest cooldown a backend asks for (Retry-After: 1) — the store may hold a deadline up to that long after
    // the backend's last failure, plus scheduling slack on a loaded 2-core machine; anything later is a wrong deadline.
    private static readonly TimeSpan LongestAnnouncement = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Slack = TimeSpan.FromSeconds(1);

    // Both sides read the same system clock; the client reads it after the backend did. This only absorbs rounding.
    private static readonly TimeSpan ClockTolerance = TimeSpan.FromMilliseconds(20);

    private readonly List<FaultyBackend> _backends = [];

    public async Task InitializeAsync()
    {
        (string Name, int Priority)[] layout = [("ptu-a", 1), ("ptu-b", 1), ("paygo-c", 2), ("paygo-d", 2)];
        for (var i = 0; i < layout.Length; i++)
        {
            var backend = await FakeBackend.StartAsync(layout[i].Name);
            _backends.Add(new FaultyBackend(backend, i, layout[i].Priority, Seed));
        }
    }

    public async Task DisposeAsync()
    {
        foreach (var backend in _backends)
        {
            await backend.Backend.DisposeAsync();
        }
    }

    [Fact]
    public async Task Twenty_thousand_requests_over_faulty_backends_end_in_success_or_an_honest_exhausted_answer()
    {
        var store = new InMemoryBackendStateStore();
        var options = new PriorityRoutingStrategyOptions
        {
            Backends = [.. _backends.Select(b => new PriorityBackend
            {
                Name = b.Name,
                BaseAddress = b.Backend.Address,
                Priority = b.Priority,
                Weight = b.Index == 0 ? 2 : 1,
            })],
            DefaultCooldown = DefaultCooldown,
            MaxCooldown = MaxCooldown,
            StateStore = store,

            // Outlier ejection has its own tests (AvailabilityFeaturesTests, BackendHealthTrackerTests). Here it would eject a
            // priority-1 backend for 30 s after a burst of attempt timeouts at start-up, ending the fault mix on it and
            // writing deadlines the backends never announced; the soak checks the store against what they said.
            OutlierEjection = { Enabled = false },
        };
        var connections = new ConnectionCounter();
        AttemptObserver? observer = null;
        using var host = new ClientHost(
            options,
            inner: b => b.AddTimeout(AttemptTimeout),
            primaryHandler: () => observer = new AttemptObserver(_backends, connections.CreateHandler(IdleTimeout)));

        var problems = new ConcurrentQueue<string>();
        var servedBy = new ConcurrentDictionary<string, int>();
        int successes = 0, throttledAnswers = 0, unavailableAnswers = 0, next = -1;
        using var limit = new CancellationTokenSource(LoadLimit);
        var stopwatch = Stopwatch.StartNew();

        async Task WorkerAsync()
        {
            while (Interlocked.Increment(ref next) is var id && id < Requests && !limit.IsCancellationRequested)
            {
                try
                {
                    using var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/soak/{id}");
                    using var response = await host.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, limit.Token);
                    var body = await response.Content.ReadAsStringAsync(limit.Token);
                    if (response.StatusCode == HttpStatusCode.OK)
                    {
                        var expected = FaultyBackend.ExpectedBody(id.ToString(CultureInfo.InvariantCulture));
                        if (body != expected)
                        {
                            problems.Enqueue($"#{id}: 200 with a wrong body: '{body}'");
                            continue;
                        }

                        Interlocked.Increment(ref successes);
                        servedBy.AddOrUpdate(response.Headers.GetValues("x-backend").Single(), 1, (_, n) => n + 1);
                    }
                    else if (CheckExhausted(response, out var retryAfter) is { } problem)
                    {
                        problems.Enqueue($"#{id}: {problem}");
                    }
                    else
                    {
                        // A polite client (the OpenAI SDK, an outer retry) waits as told before its next request.
                        await Task.Delay(retryAfter, limit.Token);

                        if (response.StatusCode == HttpStatusCode.TooManyRequests)
                        {
                            Interlocked.Increment(ref throttledAnswers);
                        }
                        else
                        {
                            Interlocked.Increment(ref unavailableAnswers);
                        }
                    }
                }
                catch (Exception e)
                {
                    problems.Enqueue($"#{id}: {e.GetType().Name}: {e.Message}");
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, Concurrency).Select(_ => Task.Run(WorkerAsync)));
        var loadTime = stopwatch.Elapsed;

        var drain = Stopwatch.StartNew();
        var leftOpen = await connections.WaitForZeroAsync(TimeSpan.FromSeconds(15));
        var drainTime = drain.Elapsed;
        var checkedAt = DateTimeOffset.UtcNow;

        var exhausted = throttledAnswers + unavailableAnswers;
        var perBackend = string.Join(", ", _backends.Select(b => string.Create(
            CultureInfo.InvariantCulture,
            $"{b.Name}: {b.Backend.Hits} hits/{servedBy.GetValueOrDefault(b.Name)} ok/{b.Throttles} 429 ({observer!.HeardCount(b.Index)} heard)/{b.ServerErrors} 5xx/{b.Resets} reset/{b.Hangs} hang/{b.Streamed} streamed")));
        output.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"soak: {Requests} requests in {loadTime.TotalSeconds:F1} s ({Requests / loadTime.TotalSeconds:F0} req/s), {successes} ok, {exhausted} exhausted ({throttledAnswers}x429, {unavailableAnswers}x503), {problems.Count} problems; {perBackend}; {connections.Opened} connections, drained in {drainTime.TotalSeconds:F1} s"));

        limit.IsCancellationRequested.Should().BeFalse($"the load must finish within {LoadLimit}");
        problems.Should().BeEmpty();
        (successes + exhausted).Should().Be(Requests);
        // Exhausted answers are legitimate (every backend out at once), and how often that happens depends on how the
        // failures of the four backends overlap in time on a loaded machine (about a third of the answers here); the
        // bound only makes sure the happy path — including streaming — is what the soak mostly exercises.
        successes.Should().BeGreaterThan(Requests / 4, "the backends are healthy most of the time");
        leftOpen.Should().Be(0, "every response was disposed, so every connection went idle and was closed");

        foreach (var backend in _backends)
        {
            backend.Throttles.Should().BePositive();
            backend.ServerErrors.Should().BePositive();
            backend.Resets.Should().BePositive();
            backend.Hangs.Should().BePositive();
            backend.Streamed.Should().BePositive();
            CheckStoreAgreesWithTheBackend(store, backend, observer!, checkedAt);
        }
    }

    private static string? CheckExhausted(HttpResponseMessage response, out TimeSpan retryAfter)
    {
        retryAfter = TimeSpan.Zero;
        var status = (int)response.StatusCode;
        if (status is not (429 or 503) ||
            !response.Headers.TryGetValues(ExhaustedHeader, out var marker) || marker.Single() != "true")
        {
            return $"unexpected answer {status} that is not the exhausted answer";
        }

        if (!response.Headers.TryGetValues(RetryAfterMillisecondsHeader, out var msValues) ||
            !long.TryParse(msValues.Single(), NumberStyles.None, CultureInfo.InvariantCulture, out var milliseconds) ||
            response.Headers.RetryAfter?.Delta is not { } delta)
        {
            return $"exhausted answer {status} without Retry-After and retry-after-ms";
        }

        // retry-after-ms is the delay rounded up to milliseconds plus 2 ms of slack for early timers (0 stays 0);
        // Retry-After is the same delay rounded up to whole seconds.
        var slack = milliseconds == 0 ? 0 : 2;
        if (milliseconds - slack > MaxCooldown.TotalMilliseconds)
        {
            return $"retry-after-ms {milliseconds} beyond MaxCooldown {MaxCooldown}";
        }

        retryAfter = TimeSpan.FromMilliseconds(milliseconds);
        var delayMilliseconds = milliseconds - slack;
        var covers = delta.TotalMilliseconds >= delayMilliseconds - 1 && delta.TotalMilliseconds < delayMilliseconds + 1000;
        return covers && delta.Ticks % TimeSpan.TicksPerSecond == 0
            ? null
            : $"Retry-After {delta.TotalSeconds} s disagrees with retry-after-ms {milliseconds}";
    }

    private static void CheckStoreAgreesWithTheBackend(
        InMemoryBackendStateStore store, FaultyBackend backend, AttemptObserver observer, DateTimeOffset checkedAt)
    {
        var because = $"backend {backend.Name}";
        var heard = observer.Heard(backend.Index);
        var lastFailure = observer.LastFailure(backend.Index);

        // What the client heard is what the backend said (announcements lost to an attempt timeout are simply unheard).
        heard.Should().NotBeNull(because);
        backend.MaxAnnounced.Should().BeOnOrAfter(heard!.Value, because);

        if (!store.TryGetUnavailability(new PriorityBackend { Name = backend.Name, BaseAddress = backend.Backend.Address }.GetStateKey(), out var state))
        {
            // The store sweeps expired entries (every 30 s of writes): a missing entry must be one whose time has passed.
            heard.Value.Should().BeBefore(checkedAt, because);
            return;
        }

        state.Until.Should().BeOnOrAfter(heard.Value - ClockTolerance, $"{because}: the store keeps the latest deadline the backend announced");
        lastFailure.Should().NotBeNull(because);
        state.Until.Should().BeOnOrBefore(lastFailure!.Value + LongestAnnouncement + Slack, $"{because}: no deadline beyond what was asked");
    }
}
