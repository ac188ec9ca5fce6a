using Microsoft.Extensions.Http.Resilience;
using Polly;
using Polly.PriorityRouting;

namespace PriorityRouting.Simulation.Routers;

/// <summary>
/// Ours: the priority routing strategy in a <see cref="ResilienceHandler"/>, on the virtual clock, every replica with its
/// own store over shared deadlines and, unless <see cref="SimulationSettings.BudgetSharing"/> is off, shared budget
/// observations (<see cref="ReplicaStateStore"/>: what the Redis store gives across processes). With
/// <c>tokenBudgets</c> off it is "ours (before)": the strategy as it routed before the budget view
/// (<see cref="PriorityRoutingStrategyOptions.TokenBudgets"/>). With <c>queueWait</c> it is "ours (queue)": callers
/// that no backend can take wait inside the strategy, up to <see cref="SimulationSettings.QueueWait"/> (one refill period
/// unless set; <see cref="PriorityRoutingStrategyOptions.MaxQueueWait"/>), instead of being answered 429. With
/// <c>reserved</c> it is "ours (reserved)": every replica's store is also an <see cref="IBackendReservationStore"/>
/// (<see cref="ReservingReplicaStateStore"/>), so the strategy reserves every attempt's cost on a counter all replicas
/// share, one round trip of <see cref="SimulationSettings.ReservationRoundTrip"/> away, as it does on Redis with
/// reservations on; the library's admission path decides (granted, refused until the refill, or unknown: the replica's
/// own budget view decides). "ours (reserved)" is what we tell an app with many replicas to run, so it waits as well
/// (<c>reserved</c> with <c>queueWait</c>, as in <c>SimulationDriver.Routers</c>): a caller that every backend's shared
/// budget refused waits in the strategy for the refusal's refill and reserves again, within the same bound as
/// "ours (queue)", instead of being answered 429 at once. Without the wait it lost the "fewest client-visible 429/503"
/// goal to "ours (queue)": its 429s were answers that a wait of one refill would have served.
/// With <c>declared</c> it is "ours (declared)": every
/// backend declares its true per-minute quota (<see cref="PriorityBackend.TokensPerMinute"/>, or
/// <see cref="PriorityBackend.RequestsPerMinute"/> when requests are counted), each replica its share of it; or, in
/// "ours (declared, whole per replica)", each replica the whole quota.
/// </summary>
internal sealed class PriorityRoutingRouter(bool tokenBudgets, bool queueWait = false, bool reserved = false, DeclaredQuotas declared = DeclaredQuotas.None) : IRouterUnderTest
{
    public const string OursName = "ours";

    public const string BeforeName = "ours (before)";

    public const string QueueName = "ours (queue)";

    public const string ReservedName = "ours (reserved)";

    public const string DeclaredName = "ours (declared)";

    public const string DeclaredWholeName = "ours (declared, whole per replica)";

    public DeclaredQuotas Declared => declared;

    public string Name => declared switch
    {
        DeclaredQuotas.ReplicaShare => DeclaredName,
        DeclaredQuotas.WholeQuota => DeclaredWholeName,
        _ => reserved ? ReservedName : queueWait ? QueueName : tokenBudgets ? OursName : BeforeName,
    };

    /// <summary>Gets a value indicating that waiters released from <see cref="PriorityRoutingStrategyOptions.MaxQueueWait"/> continue asynchronously.</summary>
    public bool ReleasesWaitersAsynchronously => true;

    public Uri RequestAddress(SimulationScenario scenario) => new(SimulationDriver.PlaceholderAddress, SimulationDriver.RequestPath);

    public IReadOnlyList<HttpMessageInvoker> CreateReplicas(RouterEnvironment environment, int replicaCount)
    {
        var shared = new InMemoryBackendStateStore();
        var settings = environment.Settings;
        var budgets = settings.BudgetSharing ? new SimulatedBudgetChannel(environment.Time, settings.BudgetPublishInterval, settings.BudgetDelay) : null;
        var maxQueueWait = queueWait ? settings.QueueWait ?? settings.ReplenishmentPeriod : (TimeSpan?)null;
        var reservations = reserved ? new SharedReservationCounter(settings.ReservationMaxAnswerDelay) : null;
        return [.. Enumerable.Range(0, replicaCount).Select(replica =>
        {
            var store = reservations is null
                ? new ReplicaStateStore(shared, budgets)
                : new ReservingReplicaStateStore(shared, budgets, reservations, environment.Delays, environment.Time, settings.ReservationRoundTrip);
            return CreateReplica(environment, environment.Transport, store, environment.RandomFor(replica), maxQueueWait, replicaCount);
        })];
    }

    private HttpMessageInvoker CreateReplica(
        RouterEnvironment environment, HttpMessageHandler transport, IBackendStateStore store, Random random, TimeSpan? maxQueueWait, int replicaCount)
    {
        var options = new PriorityRoutingStrategyOptions { StateStore = store, TokenBudgets = tokenBudgets, MaxQueueWait = maxQueueWait };
        var sharers = declared == DeclaredQuotas.ReplicaShare ? replicaCount : 1;
        foreach (var backend in environment.Scenario.Backends)
        {
            var perMinute = declared == DeclaredQuotas.None ? (int?)null : (int)(backend.CapacityPerSecond * 60 / sharers);
            options.Backends.Add(new PriorityBackend
            {
                Name = backend.Name,
                BaseAddress = backend.Address,
                Priority = backend.Priority,
                TokensPerMinute = environment.Scenario.MixedSizes ? perMinute : null,
                RequestsPerMinute = environment.Scenario.MixedSizes ? null : perMinute,
            });
        }

        // The options' Randomizer is internal (visible to this project): seeded per replica, the run is reproducible.
        options.Randomizer = random.Next;

        var pipeline = new ResiliencePipelineBuilder<HttpResponseMessage> { TimeProvider = environment.Time }
            .AddPriorityRouting(options)
            .Build();
        return new HttpMessageInvoker(new ResilienceHandler(pipeline) { InnerHandler = transport }, disposeHandler: false);
    }
}
