using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Polly.PriorityRouting;

/// <summary>
/// The instruments of the <c>Polly.PriorityRouting</c> meter. One instance per meter; strategies register as sources
/// of the observable gauges and unregister when their pipeline is disposed (options reload).
/// </summary>
/// <remarks>
/// Tags carry backend names, priorities, pipeline and strategy names only: never header values, never URLs.
/// </remarks>
internal sealed class PriorityRoutingMetrics
{
    public const string MeterName = "Polly.PriorityRouting";

    private static readonly Lazy<PriorityRoutingMetrics> SharedInstance = new(() => new PriorityRoutingMetrics(new Meter(MeterName)));

    // IMeterFactory hands out one Meter per name: instruments are created once per meter, not once per pipeline.
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<Meter, PriorityRoutingMetrics> ByMeter = new();

    private const int MinSweepSize = 16;

    private readonly List<WeakReference<PriorityRoutingGaugeSource>> _sources = [];
    private int _nextSweep = MinSweepSize;

    public PriorityRoutingMetrics(Meter meter)
    {
        Attempts = meter.CreateCounter<long>(
            "priority_routing.attempts",
            unit: "{attempt}",
            description: "Attempts sent to backends, by backend, priority and outcome.");
        Failovers = meter.CreateCounter<long>(
            "priority_routing.failovers",
            unit: "{failover}",
            description: "Attempts that failed and moved the request on to another backend, by the backend that failed.");
        MarkedUnavailable = meter.CreateCounter<long>(
            "priority_routing.backend.marked_unavailable",
            unit: "{mark}",
            description: "Marks that took a backend (or a partition of it) out of rotation or kept it out, by backend and reason.");
        ReservationsRefused = meter.CreateCounter<long>(
            "priority_routing.reservations.refused",
            unit: "{reservation}",
            description: "Attempts the shared budget of a backend refused (IBackendReservationStore, e.g. Redis with Reservations): the backend was skipped for that request, unmarked, by backend and request class.");
        Exhausted = meter.CreateCounter<long>(
            "priority_routing.exhausted",
            unit: "{answer}",
            description: "Synthetic 429/503 answers given because no backend was left to try.");
        TimeToFirstByte = meter.CreateHistogram<double>(
            "priority_routing.backend.time_to_first_byte",
            unit: "s",
            description: "Time from sending an attempt to the first byte of its response body (headers for an empty body), by backend; recorded for every answer that goes back to the caller.");
        BrokenStreams = meter.CreateCounter<long>(
            "priority_routing.streams.broken",
            unit: "{stream}",
            description: "Response bodies that broke after reaching the caller, by backend and reason (aborted, stalled).");
        QueuedWaits = meter.CreateHistogram<double>(
            "priority_routing.queue.wait_duration",
            unit: "s",
            description: "Waits of requests that no backend could take, for the room promised them in a refill (MaxQueueWait), by the backend waited for and outcome (released, canceled).");

        Spillovers = meter.CreateCounter<long>(
            "priority_routing.provisioned.spillovers",
            unit: "{answer}",
            description: "Answers that carried x-ms-spillover-from-deployment: an Azure OpenAI provisioned deployment spilled the request over to its standard deployment.");
        Utilization = meter.CreateHistogram<double>(
            "priority_routing.provisioned.utilization",
            unit: "%",
            description: "The azure-openai-deployment-utilization an Azure OpenAI provisioned deployment reported on an answer.");
        meter.CreateObservableGauge(
            "priority_routing.tier.unavailable_backends",
            ObserveUnavailableBackends,
            unit: "{backend}",
            description: "Backends currently out of rotation, per priority tier; with a partition tag, those out for that throttle partition.");
        meter.CreateObservableGauge(
            "priority_routing.time_until_available",
            ObserveTimeUntilAvailable,
            unit: "s",
            description: "Time until the soonest backend becomes available again (0 when one is); with a partition tag, for that throttle partition.");
        meter.CreateObservableGauge(
            "priority_routing.backend.in_flight",
            ObserveInFlight,
            unit: "{request}",
            description: "Requests in flight from this process to a backend with a cap (MaxConcurrentRequests), counted until their response body ends.");
    }

    /// <summary>Gets the instruments on a process-wide meter, for pipelines built without an <c>IMeterFactory</c>.</summary>
    public static PriorityRoutingMetrics Shared => SharedInstance.Value;

    public static PriorityRoutingMetrics For(IMeterFactory? meterFactory)
        => meterFactory is null
            ? Shared
            : ByMeter.GetValue(meterFactory.Create(MeterName), meter => new PriorityRoutingMetrics(meter));

    public Counter<long> Attempts { get; }

    public Counter<long> Failovers { get; }

    public Counter<long> MarkedUnavailable { get; }

    public Counter<long> ReservationsRefused { get; }

    public Counter<long> Exhausted { get; }

    public Histogram<double> TimeToFirstByte { get; }

    public Counter<long> BrokenStreams { get; }

    public Histogram<double> QueuedWaits { get; }

    public Counter<long> Spillovers { get; }

    public Histogram<double> Utilization { get; }

    public void Register(PriorityRoutingGaugeSource source)
    {
        lock (_sources)
        {
            // Pipelines built outside a registry are never disposed, and nothing may ever read the gauges: collected
            // sources are dropped here too, whenever the list has doubled since the last sweep (amortised O(1)).
            if (_sources.Count >= _nextSweep)
            {
                _sources.RemoveAll(reference => !reference.TryGetTarget(out _));
                _nextSweep = Math.Max(MinSweepSize, _sources.Count * 2);
            }

            _sources.Add(new WeakReference<PriorityRoutingGaugeSource>(source));
        }
    }

    public void Unregister(PriorityRoutingGaugeSource source)
    {
        lock (_sources)
        {
            _sources.RemoveAll(reference => !reference.TryGetTarget(out var target) || ReferenceEquals(target, source));
        }
    }

    private List<PriorityRoutingGaugeSource> LiveSources()
    {
        lock (_sources)
        {
            var live = new List<PriorityRoutingGaugeSource>(_sources.Count);
            _sources.RemoveAll(reference =>
            {
                if (reference.TryGetTarget(out var target))
                {
                    live.Add(target);
                    return false;
                }

                return true;
            });
            return live;
        }
    }

    private IEnumerable<Measurement<int>> ObserveUnavailableBackends()
    {
        foreach (var source in LiveSources())
        {
            var snapshot = source.TakeSnapshot();
            foreach (var tier in snapshot.Backends.GroupBy(backend => backend.Priority))
            {
                var tags = source.Tags;
                tags.Add(PriorityRoutingTags.BackendPriority, tier.Key);
                yield return new Measurement<int>(tier.Count(backend => !backend.IsAvailable), tags);

                foreach (var partition in snapshot.Partitions)
                {
                    var partitionTags = tags;
                    partitionTags.Add(PriorityRoutingTags.Partition, partition);
                    yield return new Measurement<int>(tier.Count(backend => !backend.IsAvailableFor(partition)), partitionTags);
                }
            }
        }
    }

    private IEnumerable<Measurement<int>> ObserveInFlight()
    {
        foreach (var source in LiveSources())
        {
            foreach (var backend in source.CappedBackends)
            {
                var tags = source.Tags;
                tags.Add(PriorityRoutingTags.BackendName, backend.Name);
                yield return new Measurement<int>(backend.InFlight!.InFlight, tags);
            }
        }
    }

    private IEnumerable<Measurement<double>> ObserveTimeUntilAvailable()
    {
        foreach (var source in LiveSources())
        {
            var snapshot = source.TakeSnapshot();
            yield return new Measurement<double>(snapshot.TimeUntilAnyAvailable.TotalSeconds, source.Tags);
            foreach (var partition in snapshot.Partitions)
            {
                var tags = source.Tags;
                tags.Add(PriorityRoutingTags.Partition, partition);
                yield return new Measurement<double>(snapshot.TimeUntilAnyAvailableFor(partition).TotalSeconds, tags);
            }

            // With model maps a model's throttles sit under each backend's own deployment name, so only a series over
            // the backends that serve the model says when it can be served again.
            foreach (var model in snapshot.Models)
            {
                var tags = source.Tags;
                tags.Add(PriorityRoutingTags.Model, model.Name);
                yield return new Measurement<double>(model.TimeUntilAvailable.TotalSeconds, tags);
            }
        }
    }
}
