using System.Text.Json;
using PriorityRouting.Simulation.Routers;

namespace PriorityRouting.Simulation.Tests;

public class SimulationDriverTests
{
    // Small enough to run in seconds, large enough to cover two refills of every bucket at 2x overload: the scenarios in
    // flight too are measured for these 20 seconds, not their own two minutes.
    private static readonly SimulationSettings Settings = new()
    {
        LoadFactors = [2.0],
        ReplicaCounts = [1, 8],
        Measured = TimeSpan.FromSeconds(20),
        Scenarios = [.. new SimulationSettings().Scenarios.Select(s => s.Completions is null ? s : s with { Measured = null })],
    };

    private static readonly SimulationScenario InFlight = Settings.Scenarios.Single(s => s.Name == SimulationSettings.InFlightScenario);

    private static readonly Lazy<Task<IReadOnlyList<RunResult>>> Results = new(() => SimulationDriver.RunAllAsync(Settings));

    [Fact]
    public async Task Two_runs_with_the_same_settings_give_the_same_numbers()
    {
        var settings = Settings with { ReplicaCounts = [8], Scenarios = [Settings.Scenarios.Single(s => s.Name == SimulationSettings.MixedScenario)] };

        var first = await SimulationDriver.RunAllAsync(settings);
        var second = await SimulationDriver.RunAllAsync(settings);

        second.Should().Equal(first);
    }

    [Fact]
    public async Task Two_runs_with_completions_in_flight_print_the_same_json()
    {
        // Completions, bursts, hedging's timers and the reservations' round trips all run on the virtual clock.
        var settings = Settings with { ReplicaCounts = [8], Scenarios = [InFlight] };

        var first = SimulationJson.Format(await SimulationDriver.RunAllAsync(settings));
        var second = SimulationJson.Format(await SimulationDriver.RunAllAsync(settings));

        second.Should().Be(first);
    }

    [Fact]
    public async Task A_run_prints_the_same_json_whether_or_not_other_runs_came_before_it_in_the_process()
    {
        // Every request names its own user, a soft-affinity key: anything a run left behind in the process (the default
        // affinity store on the system clock did) would steer the requests of the same sequence numbers in the next run.
        var alone = Settings with { ReplicaCounts = [8], Scenarios = [InFlight], RouterFilter = PriorityRoutingRouter.ReservedName };
        var afterAnother = alone with { ReplicaCounts = [1, 8] };

        var first = SimulationJson.Format(await SimulationDriver.RunAllAsync(alone));
        var second = await SimulationDriver.RunAllAsync(afterAnother);

        second.Select(r => r.Replicas).Should().Equal(1, 8);
        SimulationJson.Format([second[1]]).Should().Be(first);
    }

    [Fact]
    public void The_scenario_with_completions_in_flight_is_named_mixed_and_in_flight_and_the_classes_one_classes()
    {
        var scenarios = new SimulationSettings().Scenarios;

        scenarios.Should().ContainSingle(s => s.Name.Contains("mixed") && s.Name.Contains("in-flight"))
            .Which.Should().BeSameAs(scenarios.Single(s => s.Completions != null && !s.HasClasses));
        var classes = scenarios.Single(s => s.Name.Contains("classes") && !s.DropsBackground);
        var baseline = scenarios.Single(s => s.DropsBackground);
        (baseline.Name, baseline.BackgroundShare, baseline.Completions, baseline.Bursts).Should().Be((SimulationSettings.ClassesBaselineScenario, 0.5, classes.Completions, classes.Bursts));
        baseline.Loads.Should().Equal(classes.Loads);
        baseline.Backends.Should().Equal(classes.Backends);
        (classes.BackgroundShare, classes.Loads, classes.Completions).Should().Be((0.5, classes.Loads, CompletionTimes.Chat));
        classes.Loads.Should().Equal(2.0);
        new SimulationSettings().ReplicaCounts.Should().Equal(1, 8, 32);
    }

    [Fact]
    public async Task In_flight_completions_take_seconds_with_a_long_tail()
    {
        var results = await Results.Value;

        // Successes wait for their completions (p50 2 s, p95 15 s) on top of any refill: the long tail shows at p99.
        foreach (var run in results.Where(r => r.Scenario == InFlight.Name && r.Router == "python-style, per replica"))
        {
            run.P50TimeToSuccessMs.Should().BeGreaterThan(1_000);
            run.P99TimeToSuccessMs.Should().BeGreaterThan(15_000);
        }
    }

    [Fact]
    public async Task The_served_share_counts_answers_by_when_their_backend_admitted_them_not_when_they_arrived()
    {
        var results = await Results.Value;

        // Completions take up to two minutes: counted by arrival, answers admitted before the window and arriving in it
        // replaced others admitted in it and arriving after it, and the share moved by points from draw to draw.
        var inFlight = results.Where(r => r.Scenario == InFlight.Name).ToList();
        inFlight.Should().NotBeEmpty();
        foreach (var run in inFlight)
        {
            if (run.Router == "hedging, ordered groups")
            {
                // Its losing copies were admitted too, but nobody was served by them.
                run.ServedUnits.Should().BeLessThan(run.AdmittedUnits, run.ToString());
            }
            else
            {
                // Every other router sends an attempt only after the last one failed: every admission is an answer used.
                run.ServedUnits.Should().Be(run.AdmittedUnits, run.ToString());
            }
        }
    }

    [Fact]
    public async Task Every_row_has_its_kept_promise_bound()
    {
        var results = await Results.Value;

        results.Should().OnlyContain(r => r.KeptPromiseBound == KeptPromise.Bound(r.LoadFactor, r.ClientRetries));
        KeptPromise.Bound(2.0, 3).Should().Be(0.25);
        KeptPromise.Bound(1.5, 3).Should().BeApproximately(0.4, 1e-12);
        KeptPromise.Bound(1.0, 3).Should().Be(1);
        KeptPromise.Bound(0.5, 3).Should().Be(1);
    }

    [Fact]
    public async Task The_classes_scenario_counts_foreground_and_background_apart()
    {
        var results = await Results.Value;

        var classes = results.Where(r => r.Scenario == SimulationSettings.ClassesScenario).ToList();
        classes.Should().HaveCount(2 * 8).And.OnlyContain(r => r.LoadFactor == 2.0);
        foreach (var run in classes)
        {
            (run.ForegroundRequests + run.BackgroundRequests).Should().Be(run.NewRequests);
            (run.ForegroundSuccesses + run.BackgroundSuccesses).Should().Be(run.Successes);
            ((double)run.BackgroundRequests / run.NewRequests).Should().BeInRange(0.4, 0.6);
            run.ForegroundServedShare.Should().BeInRange(0, 1);
            run.BackgroundServedShare.Should().BeInRange(0, 1);
            run.ForegroundP99TimeToSuccessMs.Should().BePositive();
        }

        foreach (var alone in results.Where(r => r.Scenario == SimulationSettings.ClassesBaselineScenario))
        {
            // The same foreground arrivals, the background drawn but not sent: half the demand, a load of 1.
            var withBackground = classes.Single(r => r.Router == alone.Router && r.Replicas == alone.Replicas);
            (alone.LoadFactor, alone.BackgroundRequests, alone.ForegroundRequests).Should().Be((1.0, 0L, withBackground.ForegroundRequests));
            alone.ForegroundServedShare.Should().BeInRange(0, 1);
            double.IsNaN(alone.BackgroundServedShare).Should().BeTrue();
        }

        results.Where(r => !r.Scenario.StartsWith("classes", StringComparison.Ordinal)).Should().OnlyContain(r =>
            double.IsNaN(r.ForegroundServedShare) && double.IsNaN(r.BackgroundServedShare) && r.BackgroundRequests == 0);
    }

    [Fact]
    public async Task Ours_reserved_pays_fewer_backend_429s_in_flight_across_replicas_than_ours()
    {
        var results = await Results.Value;

        var reserved = results.Single(r => r.Scenario == InFlight.Name && r.Replicas == 8 && r.Router == SimulationReport.OursReserved);
        var before = results.Single(r => r.Scenario == InFlight.Name && r.Replicas == 8 && r.Router == SimulationReport.OursBefore);
        before.BackendThrottled.Should().BeGreaterThan(10);
        reserved.BackendThrottled.Should().Be(0, "every replica reserves on one counter before it sends");

        // Counted by admission (98.2 %): this short window (10-30 s) lies in the seed's long lull, where 2x offers about
        // 1x of the capacity; counted by arrival it read 99 % and more, from answers admitted before the window.
        reserved.ServedFraction.Should().BeGreaterThanOrEqualTo(0.98);
    }

    [Fact]
    public async Task In_flight_one_replica_of_ours_keeps_the_ptu_busy_although_answers_report_the_budget_of_seconds_ago()
    {
        var results = await Results.Value;

        // Before resets were counted from the send, late answers kept the PTU out of rotation after its refills (67 %).
        var ours = results.Single(r => r.Scenario == InFlight.Name && r.Replicas == 1 && r.Router == SimulationReport.Ours);
        ours.PriorityOneUtilisation.Should().BeGreaterThanOrEqualTo(0.98);
        ours.ServedFraction.Should().BeGreaterThanOrEqualTo(0.97);
        ours.BackendThrottled.Should().Be(0, "what it sent while answers were in flight still counts, and an older answer never raises the count");
    }

    [Fact]
    public async Task Waiting_background_requests_queue_behind_foreground_ones_marked_with_the_hint()
    {
        var results = await Results.Value;

        foreach (var run in results.Where(r => r.Scenario == SimulationSettings.ClassesScenario && r.Router == SimulationReport.OursQueue))
        {
            run.ForegroundServedShare.Should().BeGreaterThanOrEqualTo(0.99, $"{run.Replicas} replica(s)");
            run.BackgroundServedShare.Should().BeLessThan(0.7, "background takes what is left");
        }
    }

    [Fact]
    public async Task Foreground_callers_sent_back_find_their_room_at_the_refill_although_background_requests_arrive_first()
    {
        var results = await Results.Value;

        // Background admission leaves the room promised to foreground callers (docs/benchmarks.md): before, the
        // foreground was served 86 % with reserved and 74-81 % with ours.
        foreach (var run in results.Where(r => r.Scenario == SimulationSettings.ClassesScenario))
        {
            var because = $"{run.Router}, {run.Replicas} replica(s)";
            if (run.Router == SimulationReport.OursReserved)
            {
                run.ForegroundServedShare.Should().BeGreaterThanOrEqualTo(0.99, because);
                run.BackgroundServedShare.Should().BeLessThan(0.7, because);
            }
            else if (run.Router == SimulationReport.Ours)
            {
                run.ForegroundServedShare.Should().BeGreaterThanOrEqualTo(0.9, because);
            }
        }

        // Background work gets what is left, the room the foreground cannot spend before a reset at its peak rate: with the
        // foreground alone at 1x, over these 20 seconds that is nothing (over the scenario's two minutes, 1-8 %; that it
        // gets the room at a window's end: BackgroundHeadroomTests).
    }

    [Fact]
    public async Task Every_router_runs_in_every_scenario_side_by_side()
    {
        var results = await Results.Value;

        results.Where(r => r.Scenario != SimulationSettings.NoHeadersScenario).Select(r => r.Router).Distinct().Should().Equal(
            "one endpoint + retry", "hedging, ordered groups", "python-style, per replica", "litellm-style usage-based", "ours (before)", "ours", "ours (queue)", "ours (reserved)");
        results.Should().HaveCount((5 * 2 * 8) + (2 * 3));
    }

    [Fact]
    public async Task Without_rate_limit_headers_declared_quotas_pay_fewer_backend_429s_than_ours_learning_from_answers()
    {
        var results = await Results.Value;

        var noHeaders = results.Where(r => r.Scenario == SimulationSettings.NoHeadersScenario).ToList();
        noHeaders.Select(r => (r.Router, r.Replicas)).Should().Equal(
            ("ours", 1), ("ours (declared)", 1), ("ours (declared, whole per replica)", 1),
            ("ours", 8), ("ours (declared)", 8), ("ours (declared, whole per replica)", 8));
        var ours = noHeaders.Single(r => r.Router == SimulationReport.Ours && r.Replicas == 1);
        var declared = noHeaders.Single(r => r.Router == SimulationReport.OursDeclared && r.Replicas == 1);
        ours.BackendThrottled.Should().BeGreaterThan(0, "without headers, ours learns a backend is spent from its 429");
        declared.BackendThrottled.Should().BeLessThan(ours.BackendThrottled, "the declared quota admits from the first request");
        noHeaders.Should().OnlyContain(r => r.MeasuredSeconds == 120, "per-minute windows are measured over two minutes");
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
            Scenarios = [Settings.Scenarios.Single(s => s.Name == SimulationSettings.MixedScenario)],
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
    public async Task Ours_keeps_more_of_its_promises_than_before_when_answers_arrive_at_once()
    {
        var results = await Results.Value;

        // In flight the budget view misreads late answers (docs/benchmarks.md): not this test's subject.
        foreach (var ours in results.Where(r => r.Router == SimulationReport.Ours && (r.Scenario == SimulationSettings.UniformScenario || r.Scenario == SimulationSettings.MixedScenario)))
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
                     "clientExhaustedFloor", "keptPromiseRate", "keptPromiseBound", "idealServedShare", "idealAnyOrderServedShare", "p50TimeToSuccessMs", "p99TimeToSuccessMs", "priority1Utilisation",
                     "foregroundServedShare", "backgroundServedShare", "foregroundP99TimeToSuccessMs",
                 })
        {
            json.RootElement.EnumerateArray().Where(e => !e.TryGetProperty(field, out var _)).Should().BeEmpty(field);
        }

        json.RootElement.EnumerateArray().Should().OnlyContain(
            e => e.GetProperty("keptPromiseBound").GetDouble() == (e.GetProperty("load").GetDouble() == 1 ? 1 : 0.25),
            "every row here is at 2x with 3 retries, but the classes baseline's (its background not sent: 1x)");
        var classes = json.RootElement.EnumerateArray().Where(e => e.GetProperty("scenario").GetString()!.Contains("classes")).ToList();
        classes.Should().NotBeEmpty().And.OnlyContain(e => e.GetProperty("foregroundServedShare").ValueKind == JsonValueKind.Number);
        json.RootElement.EnumerateArray().Where(e => !e.GetProperty("scenario").GetString()!.Contains("classes"))
            .Should().OnlyContain(e => e.GetProperty("foregroundServedShare").ValueKind == JsonValueKind.Null);

        json.RootElement.EnumerateArray().Should().Contain(e => e.GetProperty("router").GetString() == "ours" && e.GetProperty("scenario").GetString()!.Contains("mixed"));
    }
}
