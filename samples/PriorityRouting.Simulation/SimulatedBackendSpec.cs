namespace PriorityRouting.Simulation;

/// <summary>
/// One simulated deployment: where it lives, its routing priority, and the capacity its token bucket grants.
/// </summary>
/// <param name="Name">The backend's name, also its host name on the in-memory transport.</param>
/// <param name="Priority">The routing tier, 1 first.</param>
/// <param name="CapacityPerSecond">
/// The sustained capacity, in the scenario's unit: requests per second when requests are counted, tokens per second
/// when tokens are (see <see cref="SimulationScenario.MixedSizes"/>).
/// </param>
public sealed record SimulatedBackendSpec(string Name, int Priority, double CapacityPerSecond)
{
    /// <summary>Gets how the backend refills its budget; Azure's windows unless set.</summary>
    public BudgetRefill Refill { get; init; } = BudgetRefill.Windows;

    public Uri Address => new($"http://{Name}/");
}
