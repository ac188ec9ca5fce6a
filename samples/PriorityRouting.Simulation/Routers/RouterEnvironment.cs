using Microsoft.Extensions.Time.Testing;

namespace PriorityRouting.Simulation.Routers;

/// <summary>
/// What a router may use in one run: the settings, the scenario (its backends), the shared transport, the virtual clock
/// and the simulation's own waits on it.
/// </summary>
internal sealed record RouterEnvironment(SimulationSettings Settings, SimulationScenario Scenario, HttpMessageHandler Transport, FakeTimeProvider Time, VirtualDelays Delays)
{
    /// <summary>Gets a random source for one replica: a different but reproducible sequence per replica.</summary>
    public Random RandomFor(int replica) => new(unchecked((Settings.Seed * 397) + replica));
}
