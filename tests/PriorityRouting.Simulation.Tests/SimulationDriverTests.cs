using System.Text.Json;

namespace PriorityRouting.Simulation.Tests;

public class SimulationDriverTests
{
    // Small enough to run in seconds, large enough to cover two refills of every bucket at 2x overload.
    private static readonly SimulationSettings Settings = new()
    {
        LoadFactors = [2.0],
        ReplicaCounts = [1, 8],
        Measured = TimeSpan.FromSeconds(20),
    };

    private static readonly Lazy<Task<IReadOnlyList<RunResult>>> Results = new(() => SimulationDriver.RunAllAsync(Settings));

    [Fact]
    public async Task Two_runs_with_the_same_settings_give_the_same_numbers()
    {
        var settings = Settings with { ReplicaCounts = [8], Scenarios = [Settings.Scenarios.Single(s => s.MixedSizes)] };

        var first = await SimulationDriver.RunAllAsync(settings);
        var second = await SimulationDriver.RunAllAsync(settings);

        second.Should().Equal(first);
    }

    [Fact]
    public async Task Every_router_runs_in_every_scenario_side_by_side()
    {
        var results = await Results.Value;

        results.Select(r => r.Router).Distinct().Should().Equal(
            "one endpoint + retry", "hedging, ordered groups", "python-style, per replica", "litellm-style usage-based", "ours (before)", "ours", "ours (queue)");
        results.Should().HaveCount(2 * 2 * 7);
    }

    [Fact]
    public async Task With_mixed_sizes_one_replica_of_ours_admits_by_budget_and_pays_no_429()
    {
        var results = await Results.Value;

        foreach (var ours in results.Where(r => r.Scenario == SimulationSettings.MixedScenario && r.Router == SimulationReport.Ours))
        {
            var before = results.Single(r => r.Scenario == ours.Scenario && r.Replicas == ours.Replicas && r.Router == SimulationReport.OursBefore);
            before.BackendThrottled.Should().BeGreaterThan(0, "size-blind admission pays 429s");
            ours.BackendThrottled.Should().BeLessThan(before.BackendThrottled);
            if (ours.Replicas == 1)
            {
                ours.BackendThrottled.Should().Be(0);
                ours.ServedFraction.Should().BeGreaterThanOrEqualTo(0.99);
            }
        }
    }

    [Fact]
    public async Task Waiting_in_the_strategy_answers_fewer_callers_429_and_pays_no_more_backend_429s()
    {
        var results = await Results.Value;

        foreach (var queue in results.Where(r => r.Scenario == SimulationSettings.MixedScenario && r.Router == SimulationReport.OursQueue))
        {
            var ours = results.Single(r => r.Scenario == queue.Scenario && r.Replicas == queue.Replicas && r.Router == SimulationReport.Ours);
            queue.ClientVisibleRejectionsPerRequest.Should().BeLessThan(ours.ClientVisibleRejectionsPerRequest, "callers with room in a refill within the bound wait for it");
            queue.ServedFraction.Should().BeGreaterThanOrEqualTo(ours.ServedFraction - 0.02);
            if (queue.Replicas == 1)
            {
                queue.BackendThrottled.Should().Be(0);
            }
        }
    }

    [Fact]
    public async Task Eight_replicas_of_ours_each_admit_on_their_own_view_and_pay_429s_unless_the_store_shares_budgets()
    {
        // Each replica has its own budget view, as each process has over Redis: alone it learns from its own answers
        // only, and admits against budgets the other seven are spending.
        var settings = Settings with
        {
            LoadFactors = [1.0, 2.0],
            ReplicaCounts = [8],
            Scenarios = [Settings.Scenarios.Single(s => s.MixedSizes)],
            RouterFilter = SimulationReport.Ours,
        };

        var alone = (await SimulationDriver.RunAllAsync(settings with { BudgetSharing = false })).Where(r => r.Router == SimulationReport.Ours).ToList();
        var shared = (await SimulationDriver.RunAllAsync(settings)).Where(r => r.Router == SimulationReport.Ours).ToList();

        alone.Should().OnlyContain(r => r.BackendThrottled > 0);
        shared.Single(r => r.LoadFactor == 1.0).BackendThrottled.Should().Be(0, "every replica admits against every answer's budget");
        shared.Single(r => r.LoadFactor == 2.0).BackendThrottled.Should().BeLessThan(alone.Single(r => r.LoadFactor == 2.0).BackendThrottled);
        shared.Single(r => r.LoadFactor == 2.0).KeptPromiseRate.Should().BeGreaterThan(alone.Single(r => r.LoadFactor == 2.0).KeptPromiseRate, "each replica promises its share of a refill");
    }

    [Fact]
    public async Task Ours_keeps_more_of_its_promises_than_before()
    {
        var results = await Results.Value;

        foreach (var ours in results.Where(r => r.Router == SimulationReport.Ours))
        {
            var before = results.Single(r => r.Scenario == ours.Scenario && r.Replicas == ours.Replicas && r.Router == SimulationReport.OursBefore);
            ours.KeptPromiseRate.Should().BeGreaterThan(before.KeptPromiseRate);
        }
    }

    [Fact]
    public async Task The_json_report_has_one_object_per_run_with_the_named_fields()
    {
        var results = await Results.Value;

        using var json = JsonDocument.Parse(SimulationJson.Format(results));

        json.RootElement.GetArrayLength().Should().Be(results.Count);
        var first = json.RootElement[0];
        foreach (var field in new[]
                 {
                     "router", "scenario", "replicas", "load", "servedShare", "backend429PerSuccess", "clientExhaustedPerRequest",
                     "clientExhaustedFloor", "keptPromiseRate", "p50TimeToSuccessMs", "p99TimeToSuccessMs", "priority1Utilisation",
                 })
        {
            first.TryGetProperty(field, out _).Should().BeTrue(field);
        }

        json.RootElement.EnumerateArray().Should().Contain(e => e.GetProperty("router").GetString() == "ours" && e.GetProperty("scenario").GetString()!.Contains("mixed"));
    }
}
