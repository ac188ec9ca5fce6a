// Measures how long a mark made on one replica takes to be visible in another replica's local mirror, through a real
// Redis: two service providers, two multiplexers, one Redis. Not part of the test run.
//
//   redis-server --port 6390 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes
//   dotnet run -c Release --project benchmarks/Polly.PriorityRouting.Redis.Latency -- 127.0.0.1:6390 1000
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Polly.PriorityRouting;

var configuration = args.Length > 0 ? args[0] : "127.0.0.1:6379";
var marks = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 1000;
const int WarmupMarks = 100;
var keyPrefix = $"latency:{Guid.NewGuid():N}:";

await using var writerServices = CreateReplica(configuration, keyPrefix);
await using var readerServices = CreateReplica(configuration, keyPrefix);
var writer = writerServices.GetRequiredService<IBackendStateStore>();
var reader = readerServices.GetRequiredService<IBackendStateStore>();

// Both replicas connect and subscribe in the background: wait until a probe goes through.
var ready = Stopwatch.StartNew();
while (!reader.TryGetUnavailability("probe", out _))
{
    if (ready.Elapsed > TimeSpan.FromSeconds(10))
    {
        Console.Error.WriteLine($"Redis at {configuration} did not carry a mark within 10 s.");
        return 1;
    }

    await MarkAsync(writer, "probe");
    await Task.Delay(50);
}

await MeasureAsync(WarmupMarks, "warmup");
var (propagation, callerWait) = await MeasureAsync(marks, "run");

Console.WriteLine($"Redis: {configuration}; marks: {marks} (after {WarmupMarks} warm-up marks); one mark at a time.");
Console.WriteLine();
Console.WriteLine("| Measure | p50 | p90 | p99 | max | mean |");
Console.WriteLine("| --- | ---: | ---: | ---: | ---: | ---: |");
Console.WriteLine(Row("Propagation A.MarkUnavailableAsync → visible in B's mirror", propagation));
Console.WriteLine(Row("Caller wait in MarkUnavailableAsync", callerWait));
return 0;

async Task<(double[] Propagation, double[] CallerWait)> MeasureAsync(int count, string run)
{
    var propagation = new double[count];
    var callerWait = new double[count];
    for (var i = 0; i < count; i++)
    {
        var backendName = $"{run}-{i}";
        var started = Stopwatch.GetTimestamp();
        await MarkAsync(writer, backendName);
        callerWait[i] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;

        var spin = default(SpinWait);
        while (!reader.TryGetUnavailability(backendName, out _))
        {
            // Spins, then yields, sleeping 1 ms only now and then: a busy-wait without yielding starves the
            // multiplexer's own threads on a small machine and measures the contention, not the store.
            spin.SpinOnce();
        }

        propagation[i] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
    }

    return (propagation, callerWait);
}

static ValueTask MarkAsync(IBackendStateStore store, string backendName)
{
    var now = DateTimeOffset.UtcNow;
    return store.MarkUnavailableAsync(backendName, new BackendUnavailability(now.AddSeconds(60), BackendUnavailableReason.Throttled), now, CancellationToken.None);
}

static ServiceProvider CreateReplica(string configuration, string keyPrefix)
    => new ServiceCollection()
        .AddPriorityRoutingRedisStore(configuration, options => options.KeyPrefix = keyPrefix)
        .BuildServiceProvider();

static string Row(string measure, double[] milliseconds)
{
    Array.Sort(milliseconds);
    double Percentile(double p) => milliseconds[Math.Min(milliseconds.Length - 1, (int)Math.Ceiling(p * milliseconds.Length) - 1)];
    return string.Create(
        CultureInfo.InvariantCulture,
        $"| {measure} | {Percentile(0.50):F3} ms | {Percentile(0.90):F3} ms | {Percentile(0.99):F3} ms | {milliseconds[^1]:F3} ms | {milliseconds.Average():F3} ms |");
}
