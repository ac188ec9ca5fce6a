using System.Diagnostics;
using System.Globalization;
using PriorityRouting.Simulation;
using PriorityRouting.Simulation.Routers;

// Usage: dotnet run -c Release --project samples/PriorityRouting.Simulation
//            [-- --period <seconds>] [--measured <seconds> (where a scenario has no window of its own)] [--loads 1,1.5] [--replicas 1,8] [--scenario mixed] [--routers ours] [--budget-interval <ms>] [--budget-delay <ms>] [--budget-sharing on|off] [--budget-headers admission|answer] [--reservation-delay <ms>] [--reservation-reads send|<seconds>] [--queue-wait <seconds>] [--retries same|any] [--charts <directory>] [--seed <int>] [--json]
//        or: dotnet run -c Release --project samples/PriorityRouting.Simulation -- --latency
if (args.Contains("--latency"))
{
    // Usage: dotnet run -c Release --project samples/PriorityRouting.Simulation -- --latency
    Console.Write(LatencySimulation.Format(await LatencySimulation.RunAllAsync()));
    return 0;
}

var settings = new SimulationSettings();
var chartDirectory = Path.Combine("artifacts", "simulation");
var json = args.Contains("--json");
args = [.. args.Where(a => a != "--json")];
for (var i = 0; i + 1 < args.Length; i += 2)
{
    switch (args[i])
    {
        case "--period":
            settings = settings with { ReplenishmentPeriod = Seconds(args[i + 1]) };
            break;
        case "--measured":
            settings = settings with { Measured = Seconds(args[i + 1]) };
            break;
        case "--loads":
            settings = settings with { LoadFactors = [.. args[i + 1].Split(',').Select(l => double.Parse(l, CultureInfo.InvariantCulture))] };
            break;
        case "--replicas":
            settings = settings with { ReplicaCounts = [.. args[i + 1].Split(',').Select(r => int.Parse(r, CultureInfo.InvariantCulture))] };
            break;
        case "--scenario":
            settings = settings with { Scenarios = [.. settings.Scenarios.Where(s => s.Name.Contains(args[i + 1], StringComparison.OrdinalIgnoreCase))] };
            break;
        case "--routers":
            settings = settings with { RouterFilter = args[i + 1] };
            break;
        case "--budget-interval":
            settings = settings with { BudgetPublishInterval = TimeSpan.FromMilliseconds(double.Parse(args[i + 1], CultureInfo.InvariantCulture)) };
            break;
        case "--budget-delay":
            settings = settings with { BudgetDelay = TimeSpan.FromMilliseconds(double.Parse(args[i + 1], CultureInfo.InvariantCulture)) };
            break;
        case "--stagger":
            settings = settings with { StaggerReplicas = args[i + 1] != "off" };
            break;
        case "--budget-sharing":
            settings = settings with { BudgetSharing = args[i + 1] != "off" };
            break;
        case "--budget-headers":
            settings = settings with { BudgetAtAdmission = args[i + 1] != "answer" };
            break;
        case "--reservation-delay":
            settings = settings with { ReservationRoundTrip = TimeSpan.FromMilliseconds(double.Parse(args[i + 1], CultureInfo.InvariantCulture)) };
            break;
        case "--reservation-reads":
            settings = settings with { ReservationMaxAnswerDelay = args[i + 1] == "send" ? null : Seconds(args[i + 1]) };
            break;
        case "--queue-wait":
            settings = settings with { QueueWait = Seconds(args[i + 1]) };
            break;
        case "--retries":
            // Where a client's retry lands: the replica that answered it, or any (a gateway's load balancer).
            settings = settings with
            {
                RetriesOnAnyReplica = args[i + 1] switch
                {
                    "same" => false,
                    "any" => true,
                    _ => throw new ArgumentException($"--retries takes same or any, not {args[i + 1]}."),
                },
            };
            break;
        case "--charts":
            chartDirectory = args[i + 1];
            break;
        case "--seed":
            // Another draw of arrivals, sizes and completion times: how much a number moves by chance alone.
            settings = settings with { Seed = int.Parse(args[i + 1], CultureInfo.InvariantCulture) };
            break;
        default:
            throw new ArgumentException($"Unknown option {args[i]}. Options: --period <seconds>, --measured <seconds>, --loads <list>, --replicas <list>, --scenario <name part>, --routers <name part>, --budget-interval <ms>, --budget-delay <ms>, --budget-sharing on|off, --budget-headers admission|answer, --reservation-delay <ms>, --reservation-reads send|<max answer delay, seconds>, --queue-wait <seconds>, --retries same|any, --charts <directory>, --seed <int>, --json.");
    }
}

if (json)
{
    // One JSON array on stdout and nothing else, for scripts.
    Console.WriteLine(SimulationJson.Format(await SimulationDriver.RunAllAsync(settings)));
    return 0;
}

Console.WriteLine("Priority routing simulation: virtual clock, in-memory transport, deterministic.");
foreach (var scenario in settings.Scenarios)
{
    Console.WriteLine(scenario.Name + ": " + string.Join(", ", scenario.Backends.Select(b => string.Create(CultureInfo.InvariantCulture, $"{b.Name} (priority {b.Priority}, {b.CapacityPerSecond:0} {scenario.Unit}/s)"))));
    if (!scenario.ReportsBudgets || scenario.RefillPeriod is not null || scenario.Measured is not null)
    {
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  {(scenario.ReportsBudgets ? "" : "no rate-limit headers (a 429 carries only Retry-After); ")}refilled every {(scenario.RefillPeriod ?? settings.ReplenishmentPeriod).TotalSeconds:0} s; {(scenario.Measured ?? settings.Measured).TotalSeconds:0} s measured"));
    }

}

Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"Token buckets refilled every {settings.ReplenishmentPeriod.TotalSeconds:0.###} s; {settings.Warmup.TotalSeconds:0} s warm-up, {settings.Measured.TotalSeconds:0} s measured in steps of {settings.Step.TotalMilliseconds:0} ms; clients retry 429/503 up to {settings.ClientRetries} times after Retry-After{(settings.RetriesOnAnyReplica ? ", on any replica" : "")}."));

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

Console.WriteLine();
foreach (var chart in SimulationCharts.Save(chartDirectory, results))
{
    Console.WriteLine($"Chart: {Path.GetFullPath(chart)}");
}

return 0;

static TimeSpan Seconds(string value) => TimeSpan.FromSeconds(double.Parse(value, CultureInfo.InvariantCulture));
