using System.Diagnostics.Metrics;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Streaming;

public sealed class TimeToFirstByteTests : IDisposable
{
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();

    public void Dispose() => _services.Dispose();

    [Fact]
    public async Task A_caller_that_reads_late_does_not_make_a_backend_whose_body_had_arrived_look_slow()
    {
        // A read that completes at once (the bytes were already there) must not measure the caller's own delay:
        // latency-aware selection would move traffic away from a fast backend.
        using var ttfb = new MetricCollector<double>(
            _services.GetRequiredService<IMeterFactory>(), PriorityRoutingMetrics.MeterName, "priority_routing.backend.time_to_first_byte");
        using var h = new RoutingHarness(
            o =>
            {
                o.SelectionMode = BackendSelectionMode.LatencyAware;
                o.MeterFactory = _services.GetRequiredService<IMeterFactory>();
            },
            RoutingHarness.Backend("a", 1));
        h.Transport.Respond("a", _ =>
        {
            h.Time.Advance(TimeSpan.FromMilliseconds(50));
            return new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent("whole body, already here") };
        });

        using var response = await h.Client.GetAsync("/", HttpCompletionOption.ResponseHeadersRead);
        h.Time.Advance(TimeSpan.FromSeconds(2)); // the app does its own work before it reads the body
        (await response.Content.ReadAsStringAsync()).Should().Be("whole body, already here");

        ttfb.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(
            [0.05], "the backend answered in 50 ms; the 2 s are the caller's");
    }
}
