namespace PriorityRouting.Simulation;

/// <summary>
/// Everything one simulation run depends on. Two runs with equal settings print equal numbers.
/// </summary>
public sealed record SimulationSettings
{
    /// <summary>
    /// Gets the backends: a reserved (PTU) deployment at priority 1 and two pay-as-you-go deployments at priority 2.
    /// </summary>
    public IReadOnlyList<SimulatedBackendSpec> Backends { get; init; } =
    [
        new("ptu", 1, 50),
        new("paygo-east", 2, 25),
        new("paygo-west", 2, 25),
    ];

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
    public IReadOnlyList<double> LoadFactors { get; init; } = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0];

    /// <summary>Gets the numbers of replicas (app instances) that share the offered load.</summary>
    public IReadOnlyList<int> ReplicaCounts { get; init; } = [1, 8];

    /// <summary>
    /// Gets how many times a client re-issues a request answered 429/503, each time after the Retry-After it was told,
    /// like Polly's retry with <c>ShouldRetryAfterHeader</c> and the standard handler's 3 retries.
    /// </summary>
    public int ClientRetries { get; init; } = 3;

    /// <summary>Gets the seed of every random choice of the run.</summary>
    public int Seed { get; init; } = 20261124;

    public double AggregateCapacity => Backends.Sum(b => b.RequestsPerSecond);
}
