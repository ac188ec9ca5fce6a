using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.DependencyInjection;

namespace Polly.PriorityRouting.Tests.Telemetry;

public sealed class GaugeSourceRegistrationTests : IDisposable
{
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();

    public void Dispose() => _services.Dispose();

    [Fact]
    public void Pipelines_dropped_without_disposal_do_not_accumulate_while_no_one_reads_the_gauges()
    {
        // Defect: PriorityRoutingMetrics.Register (Telemetry/PriorityRoutingMetrics.cs:95-101) appends a WeakReference per
        // pipeline and prunes dead ones only when a listener observes the gauges (LiveSources) or on Dispose; pipelines
        // built with ResiliencePipelineBuilder.Build() are never disposed, so without a metrics listener the list grows
        // with every pipeline ever built.
        var meterFactory = _services.GetRequiredService<IMeterFactory>();
        for (var round = 0; round < 10; round++)
        {
            BuildAndDrop(meterFactory, 500);
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
        }

        // At most 500 are alive at a time: the registry may hold a bounded multiple of that, not all 5,000 ever built.
        RegisteredSources(PriorityRoutingMetrics.For(meterFactory)).Should().BeLessThanOrEqualTo(1100);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void BuildAndDrop(IMeterFactory meterFactory, int count)
    {
        for (var i = 0; i < count; i++)
        {
            _ = new ResiliencePipelineBuilder<HttpResponseMessage>()
                .AddPriorityRouting(new PriorityRoutingStrategyOptions
                {
                    Backends = { new PriorityBackend { Name = "a", BaseAddress = new Uri("http://a/") } },
                    StateStore = new InMemoryBackendStateStore(),
                    MeterFactory = meterFactory,
                })
                .Build();
        }
    }

    private static int RegisteredSources(PriorityRoutingMetrics metrics)
    {
        var sources = (System.Collections.ICollection)typeof(PriorityRoutingMetrics)
            .GetField("_sources", System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic)!
            .GetValue(metrics)!;
        return sources.Count;
    }
}
