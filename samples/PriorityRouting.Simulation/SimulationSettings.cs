namespace PriorityRouting.Simulation;

/// <summary>
/// Everything one simulation run depends on. Two runs with equal settings print equal numbers.
/// </summary>
public sealed record SimulationSettings
{
    /// <summary>Gets the name of the scenario of uniform requests against request budgets.</summary>
    public const string UniformScenario = "uniform requests";

    /// <summary>Gets the name of the scenario of mixed-size requests against token budgets.</summary>
    public const string MixedScenario = "mixed sizes, token budgets";

    /// <summary>Gets the name of the scenario of mixed sizes whose completions take time, with bursty arrivals.</summary>
    public const string InFlightScenario = "mixed sizes, in-flight completions, bursty";

    /// <summary>Gets the name of the scenario of two request classes: half of the demand is background work.</summary>
    public const string ClassesScenario = "classes: mixed sizes in flight, half background";

    /// <summary>Gets the name of the classes scenario without its background: the baseline of the foreground's time to success.</summary>
    public const string ClassesBaselineScenario = "classes baseline: the same foreground, no background";

    /// <summary>Gets the name of the scenario whose backends report no budget: mixed sizes against per-minute quotas.</summary>
    public const string NoHeadersScenario = "no rate-limit headers, per-minute quotas";

    /// <summary>
    /// Gets the scenarios. All have a reserved (PTU) deployment at priority 1 and two pay-as-you-go deployments at
    /// priority 2: uniform requests against 50 + 25 + 25 requests per second, and mixed sizes against 1.2M + 600k +
    /// 600k tokens per minute (20,000 + 10,000 + 10,000 tokens per second), answered at once; then the same mixed sizes
    /// with completions that take time (<see cref="CompletionTimes.Chat"/>), bursty arrivals
    /// (<see cref="ArrivalBursts.Default"/>), and the last pay-as-you-go deployment an OpenAI one (continuous refill);
    /// and that scenario again at 2x overload with half of the requests background work, and once more with the
    /// background not sent (its foreground alone, at 1x). Last, the mixed sizes answered at once against backends that send
    /// no rate-limit headers (only a 429 with <c>Retry-After</c>) and check their per-minute quota over one-minute
    /// windows, measured for two minutes: "ours" against "ours (declared)", whose backends declare their quotas.
    /// </summary>
    public IReadOnlyList<SimulationScenario> Scenarios { get; init; } =
    [
        new(UniformScenario, [new("ptu", 1, 50), new("paygo-east", 2, 25), new("paygo-west", 2, 25)], MixedSizes: false),
        new(MixedScenario, [new("ptu", 1, 20_000), new("paygo-east", 2, 10_000), new("paygo-west", 2, 10_000)], MixedSizes: true),
        new(InFlightScenario, InFlightBackends, MixedSizes: true) { Completions = CompletionTimes.Chat, Bursts = ArrivalBursts.Default, Measured = InFlightMeasured },
        new(ClassesScenario, InFlightBackends, MixedSizes: true)
        {
            Completions = CompletionTimes.Chat, Bursts = ArrivalBursts.Default, BackgroundShare = 0.5, Loads = [2.0], Measured = InFlightMeasured,
        },
        new(ClassesBaselineScenario, InFlightBackends, MixedSizes: true)
        {
            Completions = CompletionTimes.Chat, Bursts = ArrivalBursts.Default, BackgroundShare = 0.5, DropsBackground = true, Loads = [2.0], Measured = InFlightMeasured,
        },
        new(NoHeadersScenario, [new("ptu", 1, 20_000), new("paygo-east", 2, 10_000), new("paygo-west", 2, 10_000)], MixedSizes: true)
        {
            ReportsBudgets = false,
            RefillPeriod = TimeSpan.FromMinutes(1),
            Measured = TimeSpan.FromMinutes(2),
            Routers = [Routers.PriorityRoutingRouter.OursName, Routers.PriorityRoutingRouter.DeclaredName, Routers.PriorityRoutingRouter.DeclaredWholeName],
        },
    ];

    /// <summary>
    /// The measured time of the scenarios with completions in flight: two minutes, not the 40 seconds of those answered
    /// at once. Completions take up to two minutes and arrivals burst in 2-second segments, so 40 seconds held too few of
    /// either: a served share moved by points with which completions straddled its ends, and the foreground p99 of the
    /// classes was the 4th or 5th longest of about 400 requests.
    /// </summary>
    private static readonly TimeSpan InFlightMeasured = TimeSpan.FromMinutes(2);

    private static IReadOnlyList<SimulatedBackendSpec> InFlightBackends =>
        [new("ptu", 1, 20_000), new("paygo-east", 2, 10_000), new("openai", 2, 10_000) { Refill = BudgetRefill.Continuous }];

    /// <summary>
    /// Gets how often each token bucket is refilled with a period's worth of capacity. Azure OpenAI evaluates its
    /// requests-per-minute quota over windows of 1 or 10 seconds; the default is the 10-second window.
    /// </summary>
    public TimeSpan ReplenishmentPeriod { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Gets the virtual time between two waves of requests.</summary>
    public TimeSpan Step { get; init; } = TimeSpan.FromMilliseconds(10);

    /// <summary>Gets the virtual time before measuring starts, so that full buckets at the start do not count.</summary>
    public TimeSpan Warmup { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Gets the measured virtual time.</summary>
    public TimeSpan Measured { get; init; } = TimeSpan.FromSeconds(40);

    /// <summary>Gets the offered load, as multiples of the aggregate capacity.</summary>
    public IReadOnlyList<double> LoadFactors { get; init; } = [1.0, 1.5, 2.0, 3.0];

    /// <summary>Gets the numbers of replicas (app instances) that share the offered load.</summary>
    public IReadOnlyList<int> ReplicaCounts { get; init; } = [1, 8, 32];

    /// <summary>
    /// Gets how many times a client re-issues a request answered 429/503, each time after the Retry-After it was told,
    /// like Polly's retry with <c>ShouldRetryAfterHeader</c> and the standard handler's 3 retries.
    /// </summary>
    public int ClientRetries { get; init; } = 3;

    /// <summary>
    /// Gets a value indicating whether a client's retry lands on any replica, drawn at random (behind a gateway's load
    /// balancer: <c>--retries any</c>), rather than on the replica that answered it (<c>--retries same</c>, the default).
    /// </summary>
    public bool RetriesOnAnyReplica { get; init; }

    /// <summary>
    /// Gets a value indicating whether the replicas' requests are spread over time (replica r sends a fraction r/replicas
    /// of an interval ahead) rather than in lockstep (every replica sends in the same wave).
    /// </summary>
    public bool StaggerReplicas { get; init; } = true;

    /// <summary>
    /// Gets a value indicating whether the replicas of ours share budget observations as the Redis store does; off, each
    /// replica learns budgets from its own answers only (deadlines are shared either way).
    /// </summary>
    public bool BudgetSharing { get; init; } = true;

    /// <summary>
    /// Gets how often a replica publishes budget observations at most: the first after a quiet interval at once, the
    /// latest per backend at the end of the interval otherwise (as <c>PriorityRoutingRedisStoreOptions.BudgetPublishInterval</c>).
    /// </summary>
    public TimeSpan BudgetPublishInterval { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Gets how long a published observation takes to reach the other replicas (Redis pub/sub in one region).</summary>
    public TimeSpan BudgetDelay { get; init; } = TimeSpan.FromMilliseconds(5);

    /// <summary>
    /// Gets the <c>MaxQueueWait</c> of "ours (queue)"; <see langword="null"/> (the default) is one
    /// <see cref="ReplenishmentPeriod"/>.
    /// </summary>
    public TimeSpan? QueueWait { get; init; }

    /// <summary>
    /// Gets a value indicating whether an answer that arrives after its completion reports the budget as it was when the
    /// backend admitted the request (its gateway decides then; the default), rather than when the answer leaves it.
    /// </summary>
    public bool BudgetAtAdmission { get; init; } = true;

    /// <summary>
    /// Gets the round trip of one reservation of "ours (reserved)" to the shared counter (Redis in one region: about a
    /// millisecond); the attempt waits it before it is sent.
    /// </summary>
    public TimeSpan ReservationRoundTrip { get; init; } = TimeSpan.FromMilliseconds(1);

    /// <summary>
    /// Gets how "ours (reserved)" reads an answer's budget: <see langword="null"/> (the default) as of the request's
    /// admission, its reset measured from the send (right when backends report at admission, see
    /// <see cref="BudgetAtAdmission"/>); else only from answers that arrive within this delay of their send, the reset
    /// measured from the arrival (right within that delay either way).
    /// </summary>
    public TimeSpan? ReservationMaxAnswerDelay { get; init; }

    /// <summary>Gets a part of the names of the routers to run; <see langword="null"/> runs them all.</summary>
    public string? RouterFilter { get; init; }

    /// <summary>Gets the seed of every random choice of the run.</summary>
    public int Seed { get; init; } = 20261124;
}
