namespace PriorityRouting.Simulation;

/// <summary>
/// What the backends count and what the app sends: uniform requests against request budgets, or requests of mixed
/// sizes (prompts of 200–8,000 tokens, output caps of 256–4,096) against token budgets, admitted by estimated tokens as
/// Azure OpenAI admits them.
/// </summary>
/// <param name="Name">The scenario's name in reports; the mixed one's contains "mixed".</param>
/// <param name="Backends">The backends; their capacity is requests per second, or tokens per second when <paramref name="MixedSizes"/>.</param>
/// <param name="MixedSizes">Whether requests have mixed sizes and backends count tokens.</param>
public sealed record SimulationScenario(string Name, IReadOnlyList<SimulatedBackendSpec> Backends, bool MixedSizes)
{
    public double AggregateCapacity => Backends.Sum(b => b.CapacityPerSecond);

    public double PriorityOneCapacity => Backends.Where(b => b.Priority == 1).Sum(b => b.CapacityPerSecond);

    /// <summary>Gets the unit of capacity in reports.</summary>
    public string Unit => MixedSizes ? "tokens" : "requests";
}
