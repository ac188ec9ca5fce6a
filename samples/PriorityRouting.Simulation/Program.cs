using System.Diagnostics;
using System.Globalization;
using PriorityRouting.Simulation;
using PriorityRouting.Simulation.Routers;

// Usage: dotnet run -c Release --project samples/PriorityRouting.Simulation [-- --period <seconds>] [--measured <seconds>]
var settings = new SimulationSettings();
for (var i = 0; i + 1 < args.Length; i += 2)
{
    var seconds = TimeSpan.FromSeconds(double.Parse(args[i + 1], CultureInfo.InvariantCulture));
    settings = args[i] switch
    {
        "--period" => settings with { ReplenishmentPeriod = seconds },
        "--measured" => settings with { Measured = seconds },
        _ => throw new ArgumentException($"Unknown option {args[i]}. Options: --period <seconds>, --measured <seconds>."),
    };
}

Console.WriteLine("Priority routing simulation: virtual clock, in-memory transport, deterministic.");
Console.WriteLine(string.Join(", ", settings.Backends.Select(b => string.Create(CultureInfo.InvariantCulture, $"{b.Name} (priority {b.Priority}, {b.RequestsPerSecond:0} req/s)"))));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"Token buckets refilled every {settings.ReplenishmentPeriod.TotalSeconds:0.###} s; {settings.Warmup.TotalSeconds:0} s warm-up, {settings.Measured.TotalSeconds:0} s measured in steps of {settings.Step.TotalMilliseconds:0} ms; clients retry 429/503 up to {settings.ClientRetries} times after Retry-After."));
if (!PriorityRoutingRouter.IsDeterministic)
{
    Console.WriteLine("Note: the strategy's randomizer could not be seeded; choices within a tier are random.");
}

Console.WriteLine();
var stopwatch = Stopwatch.StartNew();
var results = await SimulationDriver.RunAllAsync(settings, result => Console.Write('.'));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $" {results.Count} runs in {stopwatch.Elapsed.TotalSeconds:0.0} s (real time)."));
Console.WriteLine();
Console.Write(SimulationReport.Format(settings, results));
Console.WriteLine("### Targets (ours)");
Console.WriteLine();
foreach (var line in SimulationReport.CheckTargets(results))
{
    Console.WriteLine("    " + line);
}

return 0;
