namespace PriorityRouting.Simulation;

/// <summary>
/// One simulated deployment: where it lives, its routing priority, and the capacity its token bucket grants.
/// </summary>
/// <param name="Name">The backend's name, also its host name on the in-memory transport.</param>
/// <param name="Priority">The routing tier, 1 first.</param>
/// <param name="RequestsPerSecond">The sustained capacity.</param>
public sealed record SimulatedBackendSpec(string Name, int Priority, double RequestsPerSecond)
{
    public Uri Address => new($"http://{Name}/");
}
