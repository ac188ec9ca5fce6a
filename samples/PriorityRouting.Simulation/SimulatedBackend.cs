namespace PriorityRouting.Simulation;

/// <summary>
/// One backend during one run: its token bucket and what it answered inside the measured window.
/// </summary>
internal sealed class SimulatedBackend(SimulatedBackendSpec spec, IVirtualBudget bucket)
{
    public SimulatedBackendSpec Spec { get; } = spec;

    public IVirtualBudget Bucket { get; } = bucket;

    public long Ok { get; set; }

    /// <summary>Gets or sets the capacity units (requests or tokens) served inside the measured window.</summary>
    public long OkUnits { get; set; }

    public long Throttled { get; set; }
}
