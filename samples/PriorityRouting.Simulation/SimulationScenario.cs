namespace PriorityRouting.Simulation;

/// <summary>
/// What the backends count and what the app sends: uniform requests against request budgets, or requests of mixed
/// sizes (prompts of 200–8,000 tokens, output caps of 256–4,096) against token budgets, admitted by estimated tokens as
/// Azure OpenAI admits them.
/// </summary>
/// <param name="Name">The scenario's name in reports; a mixed-size one's contains "mixed", one in flight "in-flight".</param>
/// <param name="Backends">The backends; their capacity is requests per second, or tokens per second when <paramref name="MixedSizes"/>.</param>
/// <param name="MixedSizes">Whether requests have mixed sizes and backends count tokens.</param>
public sealed record SimulationScenario(string Name, IReadOnlyList<SimulatedBackendSpec> Backends, bool MixedSizes)
{
    /// <summary>Gets how long completions take; <see langword="null"/>: answers arrive at once, nothing is in flight.</summary>
    public CompletionTimes? Completions { get; init; }

    /// <summary>Gets how arrivals burst; <see langword="null"/>: evenly spaced at the offered rate.</summary>
    public ArrivalBursts? Bursts { get; init; }

    /// <summary>Gets the share of new requests that are background work (summaries, evaluations); 0: none.</summary>
    public double BackgroundShare { get; init; }

    /// <summary>
    /// Gets a value indicating whether the background requests are drawn but never sent: the same foreground arrivals
    /// with nothing behind them, the baseline of the classes scenario's foreground time to success.
    /// </summary>
    public bool DropsBackground { get; init; }

    /// <summary>Gets the offered loads this scenario runs at whatever the settings say; <see langword="null"/>: the settings'.</summary>
    public IReadOnlyList<double>? Loads { get; init; }

    /// <summary>
    /// Gets a value indicating whether the backends report their budgets (<c>x-ratelimit-*</c> on every answer, as Azure
    /// OpenAI does); <see langword="false"/>: none, only a 429 with <c>Retry-After</c> when over budget (self-hosted vLLM
    /// behind a rate-limiting gateway).
    /// </summary>
    public bool ReportsBudgets { get; init; } = true;

    /// <summary>Gets how often the backends refill their budgets; <see langword="null"/>: the settings' <see cref="SimulationSettings.ReplenishmentPeriod"/>.</summary>
    public TimeSpan? RefillPeriod { get; init; }

    /// <summary>Gets the measured virtual time; <see langword="null"/>: the settings' <see cref="SimulationSettings.Measured"/>.</summary>
    public TimeSpan? Measured { get; init; }

    /// <summary>
    /// Gets the names of the routers this scenario runs; <see langword="null"/>: every router but those that run only
    /// where named (see <see cref="SimulationDriver.RunsOn"/>).
    /// </summary>
    public IReadOnlyList<string>? Routers { get; init; }

    /// <summary>Gets a value indicating whether requests come in two classes, foreground and background.</summary>
    public bool HasClasses => BackgroundShare > 0;

    public double AggregateCapacity => Backends.Sum(b => b.CapacityPerSecond);

    public double PriorityOneCapacity => Backends.Where(b => b.Priority == 1).Sum(b => b.CapacityPerSecond);

    /// <summary>Gets the unit of capacity in reports.</summary>
    public string Unit => MixedSizes ? "tokens" : "requests";
}
