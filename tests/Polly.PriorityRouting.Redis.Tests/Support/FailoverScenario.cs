using System.Diagnostics;
using System.Globalization;
using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace Polly.PriorityRouting.Redis.Tests.Support;

/// <summary>
/// Two app replicas (A and B) over one Redis configuration, calling two Kestrel backends without pause while the
/// primary dies: A marks backends and pins ids in the window between the kill and the promotion, and the scenario
/// measures when B has them all, when each replica logs "shared again", and how many requests failed.
/// </summary>
public sealed class FailoverScenario : IAsyncDisposable
{
    private const int MarksInWindow = 5;
    private const int PinsInWindow = 3;
    private static readonly TimeSpan OutageNoticed = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan ReachedAfterPromotion = TimeSpan.FromSeconds(10);

    private readonly FakeBackendServer _first;
    private readonly FakeBackendServer _second;
    private readonly CancellationTokenSource _stopTraffic = new();
    private readonly List<Task> _traffic = [];
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private int _requests;
    private int _failed;

    private FailoverScenario(string keyPrefix, FakeBackendServer first, FakeBackendServer second, Replica a, Replica b)
    {
        KeyPrefix = keyPrefix;
        _first = first;
        _second = second;
        A = a;
        B = b;
    }

    public string KeyPrefix { get; }

    /// <summary>Gets the marks A writes in the window between the kill and the promotion.</summary>
    public IReadOnlyList<BackendStateKey> WindowMarks { get; } =
        [.. Enumerable.Range(0, MarksInWindow).Select(i => new BackendStateKey($"window-{i}@http://127.0.0.1:1"))];

    public Replica A { get; }

    public Replica B { get; }

    public int FailedRequests => Volatile.Read(ref _failed);

    public static async Task<FailoverScenario> StartAsync(string configuration)
    {
        var keyPrefix = $"test:{Guid.NewGuid():N}:";
        var first = await FakeBackendServer.StartAsync(throttles: false);
        var second = await FakeBackendServer.StartAsync(throttles: false);
        var a = await RoutedHost.StartAsync(configuration, keyPrefix, first, second);
        var b = await RoutedHost.StartAsync(configuration, keyPrefix, first, second);
        var scenario = new FailoverScenario(keyPrefix, first, second, a, b);
        scenario._traffic.Add(scenario.SendWithoutPauseAsync(a));
        scenario._traffic.Add(scenario.SendWithoutPauseAsync(b));
        return scenario;
    }

    /// <summary>
    /// Kills the primary, writes marks and pins on A in the window, promotes, and waits (bounded) for B to have them
    /// and for both replicas to share again; returns what it measured, whatever happened.
    /// </summary>
    public async Task<FailoverMeasurement> RunAsync(Action kill, Action promote)
    {
        var killedAt = DateTimeOffset.UtcNow;
        kill();
        await Eventually.HoldsAsync(() => A.RedisStore.IsInOutage && B.RedisStore.IsInOutage, OutageNoticed, "both app replicas notice the outage");

        var marks = WindowMarks;
        var pins = Enumerable.Range(0, PinsInWindow).Select(i => $"resp_window_{i}").ToList();
        foreach (var mark in marks)
        {
            await A.MarkAsync(mark, TimeSpan.FromMinutes(2));
        }

        foreach (var pin in pins)
        {
            await A.RedisStore.Affinity.PinAsync(pin, "holder@http://127.0.0.1:2", TimeSpan.FromHours(1), CancellationToken.None);
        }

        promote();
        var promotedAt = DateTimeOffset.UtcNow;

        // Not Eventually: what did not arrive within the bound is counted as lost, and measured before and after a fix.
        var missingMarks = marks.Count;
        var missingPins = pins.Count;
        TimeSpan? reached = null;
        while (DateTimeOffset.UtcNow - promotedAt < ReachedAfterPromotion)
        {
            missingMarks = marks.Count(mark => !B.Store.TryGetUnavailability(mark, out _));
            missingPins = 0;
            foreach (var pin in pins)
            {
                missingPins += await B.RedisStore.Affinity.FindAsync(pin, CancellationToken.None) is null ? 1 : 0;
            }

            if (missingMarks == 0 && missingPins == 0)
            {
                reached = DateTimeOffset.UtcNow - promotedAt;
                break;
            }

            await Task.Delay(50);
        }

        // Both replicas end their outage and say so (bounded): the flag is cleared before "shared again" is logged.
        var sharedWait = Stopwatch.StartNew();
        while (!new[] { A, B }.All(SaysSharedAgain) && sharedWait.Elapsed < ReachedAfterPromotion)
        {
            await Task.Delay(50);
        }

        return new FailoverMeasurement(
            PromotedAfter: promotedAt - killedAt,
            ReachedAfterPromotion: reached,
            SharedAgainAfterKill: [SharedAgainAfter(A, killedAt), SharedAgainAfter(B, killedAt)],
            LostMarks: missingMarks,
            LostPins: missingPins,
            Requests: Volatile.Read(ref _requests),
            FailedRequests: FailedRequests);
    }

    /// <summary>
    /// Runs <paramref name="change"/> while A marks a backend and pins an id every 100 ms, then waits, bounded, until B
    /// has them all; returns how many were written and lost.
    /// </summary>
    public async Task<WrittenMeanwhile> WhileAWritesAsync(Action change)
    {
        var marks = new List<BackendStateKey>();
        var pins = new List<string>();
        using var stop = new CancellationTokenSource();
        var writing = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var mark = new BackendStateKey($"meanwhile-{marks.Count}@http://127.0.0.1:3");
                marks.Add(mark);
                await A.MarkAsync(mark, TimeSpan.FromMinutes(5));
                var pin = $"resp_meanwhile_{pins.Count}";
                pins.Add(pin);
                await A.RedisStore.Affinity.PinAsync(pin, "holder@http://127.0.0.1:2", TimeSpan.FromHours(1), CancellationToken.None);
                await Task.Delay(100);
            }
        });
        await Task.Run(change);
        await stop.CancelAsync();
        await writing;

        var changedAt = Stopwatch.StartNew();
        var (lostMarks, lostPins) = (marks.Count, pins.Count);
        while (changedAt.Elapsed < ReachedAfterPromotion)
        {
            lostMarks = marks.Count(mark => !B.Store.TryGetUnavailability(mark, out _));
            lostPins = 0;
            foreach (var pin in pins)
            {
                lostPins += await B.RedisStore.Affinity.FindAsync(pin, CancellationToken.None) is null ? 1 : 0;
            }

            if (lostMarks == 0 && lostPins == 0)
            {
                break;
            }

            await Task.Delay(50);
        }

        return new WrittenMeanwhile(marks.Count, lostMarks, pins.Count, lostPins);
    }

    /// <summary>Asserts what every failover must give: no request failed, nothing lost, one warning and one "shared again".</summary>
    public void AssertOneCleanOutage(FailoverMeasurement measurement)
    {
        measurement.FailedRequests.Should().Be(0, "a request never fails because of the store");
        measurement.Requests.Should().BeGreaterThan(0);
        (measurement.LostMarks, measurement.LostPins).Should().Be((0, 0), "every mark and pin of the window reaches the other replica");
        measurement.ReachedAfterPromotion.Should().NotBeNull().And.Subject.Should().BeLessThan(ReachedAfterPromotion);
        foreach (var replica in new[] { A, B })
        {
            replica.WarningCount.Should().Be(1, "one outage, one warning; the store logged: {0}", Logged(replica));
            replica.StoreLogs.Count(record => record.Level == LogLevel.Information && record.Message.Contains("shared again", StringComparison.Ordinal))
                .Should().Be(1, "one outage, one \"shared again\"");
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopTraffic.CancelAsync();
        await Task.WhenAll(_traffic);
        await A.DisposeAsync();
        await B.DisposeAsync();
        await _first.DisposeAsync();
        await _second.DisposeAsync();
        _stopTraffic.Dispose();
    }

    private static bool SaysSharedAgain(Replica replica) => !replica.RedisStore.IsInOutage && LastSharedAgain(replica) is not null;

    private static string Logged(Replica replica) => string.Join(
        Environment.NewLine,
        replica.StoreLogs.Select(record => string.Create(
            CultureInfo.InvariantCulture, $"{record.Timestamp:HH:mm:ss.fff} {record.Level} {record.Message} {record.Exception?.GetType().Name}: {record.Exception?.Message}")));

    private static TimeSpan? SharedAgainAfter(Replica replica, DateTimeOffset killedAt)
        => LastSharedAgain(replica) is { } record ? record.Timestamp - killedAt : null;

    private static FakeLogRecord? LastSharedAgain(Replica replica)
        => replica.StoreLogs.LastOrDefault(record => record.Level == LogLevel.Information && record.Message.Contains("shared again", StringComparison.Ordinal));

    private async Task SendWithoutPauseAsync(Replica replica)
    {
        var client = replica.CreateClient();
        while (!_stopTraffic.IsCancellationRequested)
        {
            Interlocked.Increment(ref _requests);
            try
            {
                using var answer = await client.GetAsync(RoutedHost.AnyPath);
                if (answer.StatusCode != HttpStatusCode.OK)
                {
                    Interlocked.Increment(ref _failed);
                }
            }
            catch (HttpRequestException)
            {
                Interlocked.Increment(ref _failed);
            }

            await Task.Delay(25);
        }
    }
}

/// <summary>What one failover gave: times from the kill or the promotion, what was lost, and the requests.</summary>
public sealed record FailoverMeasurement(
    TimeSpan PromotedAfter,
    TimeSpan? ReachedAfterPromotion,
    TimeSpan?[] SharedAgainAfterKill,
    int LostMarks,
    int LostPins,
    int Requests,
    int FailedRequests)
{
    public override string ToString() => string.Create(
        CultureInfo.InvariantCulture,
        $"promoted {PromotedAfter.TotalSeconds:F1} s after the kill; window reached B {Seconds(ReachedAfterPromotion)} after the promotion; " +
        $"shared again after the kill: A {Seconds(SharedAgainAfterKill[0])}, B {Seconds(SharedAgainAfterKill[1])}; " +
        $"lost {LostMarks} of 5 marks, {LostPins} of 3 pins; {FailedRequests} of {Requests} requests failed");

    private static string Seconds(TimeSpan? time) => time is { } t ? string.Create(CultureInfo.InvariantCulture, $"{t.TotalSeconds:F1} s") : "never";
}

/// <summary>What A wrote while the topology changed, and how much of it B never had.</summary>
public sealed record WrittenMeanwhile(int Marks, int LostMarks, int Pins, int LostPins)
{
    public override string ToString() => $"{Marks} marks ({LostMarks} lost on B), {Pins} pins ({LostPins} lost on B)";
}
