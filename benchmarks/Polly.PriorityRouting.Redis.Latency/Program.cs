// Measures how long a mark made on one replica takes to be visible in another replica's local mirror, through a real
// Redis: two service providers, two multiplexers, one Redis. Not part of the test run. Interleaved with each mark, a
// baseline: a bare PUBLISH from one more multiplexer to a SUBSCRIBE handler on another, waited for the same way, which
// shows what the machine and StackExchange.Redis cost before the store adds anything.
//
//   redis-server --port 6390 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes
//   dotnet run -c Release --project benchmarks/Polly.PriorityRouting.Redis.Latency -- 127.0.0.1:6390 1000 [sleep|yield]
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Polly.PriorityRouting;
using StackExchange.Redis;

var configuration = args.Length > 0 ? args[0] : "127.0.0.1:6379";
var marks = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 1000;

// "sleep": SpinWait's default, which sleeps 1 ms once it has spun ~20 times (cheap, but rounds waits up to ~1 ms);
// "yield": never sleeps, only spins and yields (precise, but competes for the CPU on a small machine).
var waitMode = args.Length > 2 ? args[2] : "sleep";
var sleepThreshold = waitMode == "yield" ? -1 : 20;
const int WarmupMarks = 100;
var keyPrefix = $"latency:{Guid.NewGuid():N}:";

await using var writerServices = CreateReplica(configuration, keyPrefix);
await using var readerServices = CreateReplica(configuration, keyPrefix);
var writer = writerServices.GetRequiredService<IBackendStateStore>();
var reader = readerServices.GetRequiredService<IBackendStateStore>();

await using var baselinePublisher = await ConnectionMultiplexer.ConnectAsync(configuration);
await using var baselineSubscriber = await ConnectionMultiplexer.ConnectAsync(configuration);
var baselineChannel = RedisChannel.Literal(keyPrefix + "baseline");
long baselineReceived = -1;
await baselineSubscriber.GetSubscriber().SubscribeAsync(baselineChannel, (_, value) => Volatile.Write(ref baselineReceived, (long)value));

// Both replicas connect and subscribe in the background: wait until a probe goes through.
var ready = Stopwatch.StartNew();
while (!reader.TryGetUnavailability(new BackendStateKey("probe"), out _))
{
    if (ready.Elapsed > TimeSpan.FromSeconds(10))
    {
        Console.Error.WriteLine($"Redis at {configuration} did not carry a mark within 10 s.");
        return 1;
    }

    await MarkAsync(writer, new BackendStateKey("probe"));
    await Task.Delay(50);
}

await MeasureAsync(WarmupMarks, "warmup");
var (propagation, callerWait, baseline) = await MeasureAsync(marks, "run");

Console.WriteLine($"Redis: {configuration}; marks: {marks} (after {WarmupMarks} warm-up marks); one mark at a time; wait: {waitMode}.");
Console.WriteLine();
Console.WriteLine("| Measure | p50 | p90 | p99 | max | mean |");
Console.WriteLine("| --- | ---: | ---: | ---: | ---: | ---: |");
Console.WriteLine(Row("Propagation A.MarkUnavailableAsync → visible in B's mirror", propagation));
Console.WriteLine(Row("Caller wait in MarkUnavailableAsync", callerWait));
Console.WriteLine(Row("Baseline: bare PUBLISH → SUBSCRIBE handler, two multiplexers", baseline));
return 0;

async Task<(double[] Propagation, double[] CallerWait, double[] Baseline)> MeasureAsync(int count, string run)
{
    var propagation = new double[count];
    var callerWait = new double[count];
    var baseline = new double[count];
    for (var i = 0; i < count; i++)
    {
        var sent = Stopwatch.GetTimestamp();
        _ = baselinePublisher.GetSubscriber().PublishAsync(baselineChannel, i);
        WaitUntil(() => Volatile.Read(ref baselineReceived) == i);
        baseline[i] = Stopwatch.GetElapsedTime(sent).TotalMilliseconds;

        // A partitioned key, as Azure OpenAI deployments are marked: the key and the message carry both fields.
        var key = new BackendStateKey($"{run}-{i}@https://backend.example.net", "gpt-4o");
        var started = Stopwatch.GetTimestamp();
        await MarkAsync(writer, key);
        callerWait[i] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;

        WaitUntil(() => reader.TryGetUnavailability(key, out _));
        propagation[i] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
    }

    return (propagation, callerWait, baseline);
}

void WaitUntil(Func<bool> condition)
{
    var spin = default(SpinWait);
    while (!condition())
    {
        spin.SpinOnce(sleepThreshold);
    }
}

static ValueTask MarkAsync(IBackendStateStore store, BackendStateKey key)
{
    var now = DateTimeOffset.UtcNow;
    return store.MarkUnavailableAsync(key, new BackendUnavailability(now.AddSeconds(60), BackendUnavailableReason.Throttled), now, CancellationToken.None);
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
