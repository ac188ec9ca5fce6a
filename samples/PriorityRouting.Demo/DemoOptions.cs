using System.Globalization;

namespace PriorityRouting.Demo;

/// <summary>
/// The command line of the demo, parsed by hand: a handful of <c>--name value</c> pairs need no parser package.
/// </summary>
internal sealed record DemoOptions
{
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Gets the offered load, in requests per second, of each scenario.</summary>
    public double Rate { get; init; } = 24;

    /// <summary>Gets the most requests in flight at once; further requests wait for a free slot.</summary>
    public int Concurrency { get; init; } = 48;

    public string ChartPath { get; init; } = Path.Combine("artifacts", "demo", "requests-per-second.png");

    /// <summary>Gets a value indicating whether the library's metrics are printed while and after the bursts run.</summary>
    public bool Metrics { get; init; }

    /// <summary>
    /// Gets the StackExchange.Redis configuration string: when set, the demo compares replicas sharing a Redis store with
    /// replicas keeping their own in-memory store, instead of the default two scenarios.
    /// </summary>
    public string? RedisConfiguration { get; init; }

    /// <summary>Gets the number of in-process replicas of the Redis comparison; they split the offered load.</summary>
    public int Replicas { get; init; } = 4;

    public const string Usage =
        "Usage: dotnet run --project samples/PriorityRouting.Demo -- [--duration <seconds>] [--rate <requests/s>] " +
        "[--concurrency <n>] [--chart <path.png>] [--metrics] [--redis <configuration> [--replicas <n>]]";

    public static bool TryParse(string[] args, out DemoOptions options, out string? error)
    {
        options = new DemoOptions();
        error = null;
        var replicasGiven = false;
        for (var i = 0; i < args.Length; i++)
        {
            var name = args[i];
            if (name is "-h" or "--help" or "-?")
            {
                error = string.Empty;
                return false;
            }

            if (name == "--metrics")
            {
                options = options with { Metrics = true };
                continue;
            }

            if (i + 1 >= args.Length)
            {
                error = $"Missing value after {name}.";
                return false;
            }

            var value = args[++i];
            switch (name)
            {
                case "--duration" when TryParsePositive(value, out var seconds):
                    options = options with { Duration = TimeSpan.FromSeconds(seconds) };
                    break;
                case "--rate" when TryParsePositive(value, out var rate):
                    options = options with { Rate = rate };
                    break;
                case "--concurrency" when int.TryParse(value, CultureInfo.InvariantCulture, out var concurrency) && concurrency > 0:
                    options = options with { Concurrency = concurrency };
                    break;
                case "--chart":
                    options = options with { ChartPath = value };
                    break;
                case "--redis":
                    options = options with { RedisConfiguration = value };
                    break;
                case "--replicas" when int.TryParse(value, CultureInfo.InvariantCulture, out var replicas) && replicas > 0:
                    options = options with { Replicas = replicas };
                    replicasGiven = true;
                    break;
                default:
                    error = $"Unknown option or invalid value: {name} {value}";
                    return false;
            }
        }

        if (replicasGiven && options.RedisConfiguration is null)
        {
            error = "--replicas is part of the Redis comparison: give --redis <configuration> too.";
            return false;
        }

        return true;
    }

    private static bool TryParsePositive(string value, out double number)
        => double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out number) && number > 0;
}
