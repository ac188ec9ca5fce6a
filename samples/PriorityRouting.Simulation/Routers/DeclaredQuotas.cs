namespace PriorityRouting.Simulation.Routers;

/// <summary>What the backends of "ours" declare (<see cref="Polly.PriorityRouting.PriorityBackend.TokensPerMinute"/>, or requests per minute).</summary>
internal enum DeclaredQuotas
{
    /// <summary>Nothing: the budget view learns only from answers.</summary>
    None,

    /// <summary>Each replica declares its share of the backend's true per-minute quota, as docs/configuration.md advises.</summary>
    ReplicaShare,

    /// <summary>Each replica declares the whole quota: the reading of a declaration as the backend's, not the replica's.</summary>
    WholeQuota,
}
