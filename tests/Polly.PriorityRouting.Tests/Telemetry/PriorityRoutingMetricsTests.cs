using System.Diagnostics.Metrics;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Polly.PriorityRouting.Tests.Support;
using Polly.Registry;

namespace Polly.PriorityRouting.Tests.Telemetry;

public sealed class PriorityRoutingMetricsTests : IDisposable
{
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();

    private IMeterFactory MeterFactory => _services.GetRequiredService<IMeterFactory>();

    public void Dispose() => _services.Dispose();

    [Fact]
    public async Task Counts_attempts_failovers_unavailability_and_exhaustion_with_exact_tags()
    {
        using var attempts = Collector<long>("priority_routing.attempts");
        using var failovers = Collector<long>("priority_routing.failovers");
        using var unavailable = Collector<long>("priority_routing.backend.marked_unavailable");
        using var exhausted = Collector<long>("priority_routing.exhausted");
        using var h = Harness();
        h.Transport
            .Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "5"))
            .Respond("b", HttpStatusCode.ServiceUnavailable)
            .Respond("c", HttpStatusCode.OK);

        (await h.Client.GetAsync("/?api-key=secret-in-query")).Dispose();

        attempts.GetMeasurementSnapshot().Select(m => (m.Value, Tag(m, "backend.name"), Tag(m, "backend.priority"), Tag(m, "outcome"), Tag(m, "http.response.status_code")))
            .Should().Equal(
                (1L, "a", "1", "throttled", "429"),
                (1L, "b", "1", "server_error", "503"),
                (1L, "c", "2", "returned", "200"));
        failovers.GetMeasurementSnapshot().Select(m => (m.Value, Tag(m, "backend.name"), Tag(m, "backend.priority")))
            .Should().Equal((1L, "a", "1"), (1L, "b", "1"));
        unavailable.GetMeasurementSnapshot().Select(m => (m.Value, Tag(m, "backend.name"), Tag(m, "reason")))
            .Should().Equal((1L, "a", "throttled"), (1L, "b", "server_error"));
        exhausted.GetMeasurementSnapshot().Should().BeEmpty();

        var last = attempts.LastMeasurement!;
        Tag(last, "pipeline.name").Should().Be("client-pipeline");
        Tag(last, "strategy.name").Should().Be("PriorityRouting");
        last.Tags.Keys.Should().BeEquivalentTo(
            ["pipeline.name", "strategy.name", "backend.name", "backend.priority", "outcome", "http.response.status_code"],
            "an unnamed pipeline instance is omitted, not sent empty");
        last.Tags.Values.Select(v => v?.ToString()).Should().NotContain(v => v != null && (v.Contains("secret") || v.Contains("http")));

        h.Transport.Respond("c", HttpStatusCode.TooManyRequests, ("retry-after-ms", "1500"));
        (await h.Client.GetAsync("/")).Dispose();

        exhausted.GetMeasurementSnapshot().Select(m => (m.Value, Tag(m, "http.response.status_code"))).Should().Equal((1L, "429"));
    }

    [Fact]
    public async Task A_background_requests_attempts_and_exhausted_answer_carry_its_class_and_a_foreground_ones_do_not()
    {
        using var attempts = Collector<long>("priority_routing.attempts");
        using var exhausted = Collector<long>("priority_routing.exhausted");
        using var h = new RoutingHarness(
            o =>
            {
                o.MeterFactory = MeterFactory;
                o.RequestCost = _ => 1000;
            },
            RoutingHarness.Backend("a", 1));
        h.Transport.Respond("a", _ =>
        {
            var response = new HttpResponseMessage(HttpStatusCode.OK);
            response.Headers.TryAddWithoutValidation("x-ratelimit-remaining-tokens", "2500");
            response.Headers.TryAddWithoutValidation("x-ratelimit-limit-tokens", "10000");
            response.Headers.TryAddWithoutValidation("x-ratelimit-reset-tokens", "10s");
            return response;
        });

        (await h.Client.GetAsync("/")).Dispose();
        using var background = new HttpRequestMessage(HttpMethod.Get, "/");
        background.Options.Set(PriorityRoutingRequestOptions.Hints, new PriorityRoutingHints { Background = true });
        (await h.Client.SendAsync(background)).StatusCode.Should().Be(HttpStatusCode.TooManyRequests, "1,000 would leave 1,500 of the 2,000 kept");
        (await h.Client.GetAsync("/")).Dispose();

        attempts.GetMeasurementSnapshot().Select(m => (m.Value, Tag(m, "backend.name"), Tag(m, "request.class")))
            .Should().Equal((1L, "a", null), (1L, "a", null));
        exhausted.GetMeasurementSnapshot().Select(m => (m.Value, Tag(m, "http.response.status_code"), Tag(m, "request.class")))
            .Should().Equal((1L, "429", "background"));

        using var sent = new HttpRequestMessage(HttpMethod.Get, "/");
        sent.Options.Set(PriorityRoutingRequestOptions.Hints, new PriorityRoutingHints { Background = true });
        h.Time.Advance(TimeSpan.FromSeconds(19.5)); // late in the next window: the foreground can no longer spend what is left
        (await h.Client.SendAsync(sent)).Dispose();
        Tag(attempts.LastMeasurement!, "request.class").Should().Be("background");
    }

    [Fact]
    public async Task Counts_shared_reservation_refusals_by_backend_and_class_never_by_the_caller_s_partition()
    {
        using var refused = Collector<long>("priority_routing.reservations.refused");
        var store = new ReservingStore().Refuse("a", TimeSpan.FromSeconds(10));
        using var h = new RoutingHarness(
            o =>
            {
                o.MeterFactory = MeterFactory;
                o.StateStore = store;
                o.Randomizer = _ => 0;
                o.ThrottlePartitionKey = request => request.Headers.TryGetValues("x-tenant", out var values) ? values.Single() : null;
            },
            pipelineName: "client-pipeline",
            RoutingHarness.Backend("a", 1),
            RoutingHarness.Backend("b", 2));

        (await h.Client.GetAsync("/")).Dispose();
        using var background = new HttpRequestMessage(HttpMethod.Get, "/");
        background.Headers.Add("x-tenant", "tenant-1");
        background.Options.Set(PriorityRoutingRequestOptions.Hints, new PriorityRoutingHints { Background = true });
        (await h.Client.SendAsync(background)).Dispose();

        h.Transport.Hosts.Should().Equal(["b", "b"], "a's shared budget refused both");
        refused.GetMeasurementSnapshot().Select(m => (m.Value, Tag(m, "backend.name"), Tag(m, "backend.priority"), Tag(m, "request.class")))
            .Should().Equal((1L, "a", "1", null), (1L, "a", "1", "background"));
        refused.LastMeasurement!.Tags.Keys.Should().BeEquivalentTo(
            ["pipeline.name", "strategy.name", "backend.name", "backend.priority", "request.class"],
            "a partition may come from the caller (a header): one series each would grow without bound");
    }

    [Fact]
    public async Task Tags_a_shared_reservation_refusal_that_claimed_a_later_refill_for_the_caller()
    {
        using var refused = Collector<long>("priority_routing.reservations.refused");
        var store = new ReservingStore()
            .AnswerClaimant("a", (key, cost, _, _) => BackendReservation.Claimed(key, cost, TimeSpan.FromSeconds(10)))
            .Refuse("b", TimeSpan.FromSeconds(5));
        using var h = ReservingHarness(store, "claims-pipeline");

        using var response = await h.Client.PostAsync("/", new StringContent("{}"));

        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        refused.GetMeasurementSnapshot().Select(m => (m.Value, Tag(m, "backend.name"), m.Tags.TryGetValue("reservation.claimed", out var claimed) ? claimed : null))
            .Should().Equal((1L, "a", (object?)true), (1L, "b", null));
    }

    [Fact]
    public void Counts_the_shared_reservation_refusals_of_synchronous_sends_as_of_asynchronous_ones()
    {
        using var refused = Collector<long>("priority_routing.reservations.refused");
        var store = new ReservingStore().Refuse("a", TimeSpan.FromSeconds(10));
        using var h = ReservingHarness(store, "sync-pipeline");

        h.Client.Send(new HttpRequestMessage(HttpMethod.Get, "/")).Dispose();
        using var background = new HttpRequestMessage(HttpMethod.Get, "/");
        background.Options.Set(PriorityRoutingRequestOptions.Hints, new PriorityRoutingHints { Background = true });
        h.Client.Send(background).Dispose();

        h.Transport.Hosts.Should().Equal(["b", "b"], "a's shared budget refused both");
        refused.GetMeasurementSnapshot().Select(m => (m.Value, Tag(m, "pipeline.name"), Tag(m, "backend.name"), Tag(m, "request.class")))
            .Should().Equal((1L, "sync-pipeline", "a", null), (1L, "sync-pipeline", "a", "background"));
    }

    [Fact]
    public async Task Gauges_report_unavailable_backends_per_tier_and_the_time_until_one_frees_up()
    {
        using var unavailable = Collector<int>("priority_routing.tier.unavailable_backends");
        using var soonest = Collector<double>("priority_routing.time_until_available");
        using var h = Harness();
        h.Transport
            .Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "5"))
            .Respond("b", HttpStatusCode.TooManyRequests, ("Retry-After", "8"));

        (await h.Client.GetAsync("/")).Dispose();
        unavailable.RecordObservableInstruments();
        soonest.RecordObservableInstruments();

        unavailable.GetMeasurementSnapshot().Select(m => (m.Value, Tag(m, "backend.priority"))).Should().Equal((2, "1"), (0, "2"));
        soonest.LastMeasurement!.Value.Should().Be(0, "c is still available");

        h.Transport.Respond("c", HttpStatusCode.TooManyRequests, ("Retry-After", "3"));
        h.Time.Advance(TimeSpan.FromSeconds(1));
        (await h.Client.GetAsync("/")).Dispose();
        soonest.RecordObservableInstruments();

        soonest.LastMeasurement!.Value.Should().Be(3);
    }

    [Fact]
    public async Task Gauges_report_a_throttled_partition_of_every_backend_of_a_tier()
    {
        using var unavailable = Collector<int>("priority_routing.tier.unavailable_backends");
        using var soonest = Collector<double>("priority_routing.time_until_available");
        using var h = new RoutingHarness(o =>
        {
            o.Randomizer = _ => 0;
            o.MeterFactory = MeterFactory;
            o.ThrottlePartitionKey = ThrottlePartitions.AzureOpenAIDeployment;
        }, pipelineName: "client-pipeline");
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "5"))
            .Respond("b", HttpStatusCode.TooManyRequests, ("Retry-After", "8"))
            .Respond("c", HttpStatusCode.TooManyRequests, ("Retry-After", "3"));

        (await h.Client.GetAsync("/openai/deployments/gpt-4o/chat/completions")).Dispose();
        unavailable.RecordObservableInstruments();
        soonest.RecordObservableInstruments();

        unavailable.GetMeasurementSnapshot().Select(m => (m.Value, Tag(m, "backend.priority"), Tag(m, "partition"))).Should().Equal(
            (0, "1", null), (2, "1", "gpt-4o"), (0, "2", null), (1, "2", "gpt-4o"));
        soonest.GetMeasurementSnapshot().Select(m => (m.Value, Tag(m, "partition"))).Should().Equal((0d, null), (3d, "gpt-4o"));
    }

    [Fact]
    public async Task With_model_maps_the_time_until_available_has_a_series_per_model_over_the_backends_that_serve_it()
    {
        // Each backend's throttles sit under its own deployment name: a partition series cannot tell that every backend
        // serving o3 is out while gpt-4o is served; a model series over the model's own backends can.
        using var soonest = Collector<double>("priority_routing.time_until_available");
        var ptu = RoutingHarness.Backend("ptu", 1);
        ptu.Models["gpt-4o"] = "gpt-4o-ptu";
        var east = RoutingHarness.Backend("east", 2);
        east.Models["o3"] = "o3";
        var west = RoutingHarness.Backend("west", 2);
        west.Models["o3"] = "o3-2025-04-16";
        using var h = new RoutingHarness(o =>
        {
            o.Randomizer = _ => 0;
            o.MeterFactory = MeterFactory;
        }, ptu, east, west);
        h.Transport.Respond("east", HttpStatusCode.TooManyRequests, ("Retry-After", "5"))
            .Respond("west", HttpStatusCode.TooManyRequests, ("Retry-After", "8"));

        using var o3 = new StringContent("{\"model\":\"o3\"}", System.Text.Encoding.UTF8, "application/json");
        (await h.Client.PostAsync("/v1/chat/completions", o3)).StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        soonest.RecordObservableInstruments();

        soonest.GetMeasurementSnapshot().Where(m => Tag(m, "model") is not null).Select(m => (m.Value, Tag(m, "model")))
            .Should().BeEquivalentTo([(0d, "gpt-4o"), (5d, "o3")]);
    }

    [Fact]
    public async Task A_disposed_pipeline_stops_reporting_gauges()
    {
        using var unavailable = Collector<int>("priority_routing.tier.unavailable_backends");
        var options = new PriorityRoutingStrategyOptions
        {
            Backends = [RoutingHarness.Backend("a", 1)],
            StateStore = new InMemoryBackendStateStore(),
            MeterFactory = MeterFactory,
        };
        var registry = new ResiliencePipelineRegistry<string>();
        registry.TryAddBuilder<HttpResponseMessage>("p", (builder, _) => builder.AddPriorityRouting(options));
        registry.GetPipeline<HttpResponseMessage>("p");

        unavailable.RecordObservableInstruments();
        unavailable.GetMeasurementSnapshot().Should().ContainSingle();

        await registry.DisposeAsync();
        unavailable.Clear();
        unavailable.RecordObservableInstruments();
        unavailable.GetMeasurementSnapshot().Should().BeEmpty();
        await Task.CompletedTask;
    }

    [Fact]
    public async Task Provisioned_deployments_report_spillover_and_utilisation_by_backend()
    {
        using var spillovers = Collector<long>("priority_routing.provisioned.spillovers");
        using var utilization = Collector<double>("priority_routing.provisioned.utilization");
        using var h = Harness();
        h.Transport.Respond("a", HttpStatusCode.OK, ("x-ms-spillover-from-deployment", "gpt-4o-ptu"), ("azure-openai-deployment-utilization", "87.5%"));

        (await h.Client.GetAsync("/")).Dispose();
        h.Transport.Respond("a", HttpStatusCode.OK, ("azure-openai-deployment-utilization", "not a number"));
        (await h.Client.GetAsync("/")).Dispose();

        spillovers.GetMeasurementSnapshot().Select(m => (m.Value, Tag(m, "backend.name"), Tag(m, "backend.priority"))).Should().Equal((1L, "a", "1"));
        utilization.GetMeasurementSnapshot().Select(m => (m.Value, Tag(m, "backend.name"))).Should().Equal((87.5, "a"));
    }

    [Fact]
    public async Task The_in_flight_gauge_reports_each_capped_backend_until_its_body_ends()
    {
        using var inFlight = Collector<int>("priority_routing.backend.in_flight");
        var capped = RoutingHarness.Backend("a", 1);
        capped.MaxConcurrentRequests = 4;
        using var h = new RoutingHarness(o => o.MeterFactory = MeterFactory, capped, RoutingHarness.Backend("b", 2));

        var held = await h.Client.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/"), HttpCompletionOption.ResponseHeadersRead);
        inFlight.RecordObservableInstruments();
        held.Dispose();
        inFlight.RecordObservableInstruments();

        inFlight.GetMeasurementSnapshot().Select(m => (m.Value, Tag(m, "backend.name"))).Should().Equal((1, "a"), (0, "a"));
    }

    private MetricCollector<T> Collector<T>(string instrument)
        where T : struct
        => new(MeterFactory, PriorityRoutingMetrics.MeterName, instrument);

    private RoutingHarness Harness() => new(o =>
    {
        o.Randomizer = _ => 0;
        o.MeterFactory = MeterFactory;
    }, pipelineName: "client-pipeline");

    private static string? Tag<T>(CollectedMeasurement<T> measurement, string name)
        where T : struct
        => measurement.Tags.TryGetValue(name, out var value) ? Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) : null;

    /// <summary>A pipeline over backends a (priority 1) and b (priority 2) whose shared budgets <paramref name="store"/> answers.</summary>
    private RoutingHarness ReservingHarness(ReservingStore store, string pipelineName) => new(
        o =>
        {
            o.MeterFactory = MeterFactory;
            o.StateStore = store;
            o.Randomizer = _ => 0;
        },
        pipelineName: pipelineName,
        RoutingHarness.Backend("a", 1),
        RoutingHarness.Backend("b", 2));
}
