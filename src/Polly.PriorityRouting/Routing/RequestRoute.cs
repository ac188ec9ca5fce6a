namespace Polly.PriorityRouting;

/// <summary>
/// What one request routes over: the throttle partition of the request (<see cref="PriorityRoutingStrategyOptions.ThrottlePartitionKey"/>)
/// and, when the pipeline maps models, the route of its model — which backends serve it and under which name.
/// </summary>
/// <remarks>
/// A throttle of a mapped request is kept per deployment: on a backend that maps the model, its partition is the
/// backend's own name for it (Azure OpenAI throttles per deployment); on a backend without a map, the request's
/// partition as before. Without a model route this is exactly the request's partition: the path of pools without maps
/// is unchanged.
/// </remarks>
internal readonly struct RequestRoute
{
    public RequestRoute(
        string? partition,
        ModelRoute? model = null,
        long cost = 0,
        BackendSet? excluded = null,
        BudgetHold? held = null,
        double headroom = 0,
        ReservationRefusals? refusals = null,
        long claimant = 0)
    {
        Claimant = claimant;
        Partition = partition;
        Model = model;
        Cost = cost;
        Excluded = excluded;
        Held = held;
        Headroom = headroom;
        Refusals = refusals;
    }

    /// <summary>Gets the request's own throttle partition, or <see langword="null"/>.</summary>
    public string? Partition { get; }

    /// <summary>Gets the route of the request's model, or <see langword="null"/> when every backend may take it.</summary>
    public ModelRoute? Model { get; }

    /// <summary>Gets the request's estimated cost in tokens for budget admission; 0 when unknown or budgets are off.</summary>
    public long Cost { get; }

    /// <summary>
    /// Gets the backends this request may not use when its plan narrowed them beyond its model (a pinned id, hints,
    /// drained backends, no failover), or <see langword="null"/>: the exhausted answer is computed over the others only.
    /// </summary>
    public BackendSet? Excluded { get; }

    /// <summary>
    /// Gets the room held for this request in a budget's refill after it waited for it (<see cref="WaitQueue"/>), or
    /// <see langword="null"/>: its next admission on that budget spends it, and any admission (or the exhausted answer)
    /// releases it.
    /// </summary>
    public BudgetHold? Held { get; }

    /// <summary>
    /// Gets the share of each budget's limit this request must leave free after its cost: the pipeline's
    /// <see cref="PriorityRoutingStrategyOptions.BackgroundHeadroom"/> for a background request
    /// (<see cref="PriorityRoutingHints.Background"/>), 0 for a foreground one (see <see cref="BackendBudget"/>).
    /// </summary>
    public double Headroom { get; }

    /// <summary>Gets a value indicating whether the request yields to foreground requests (a non-zero <see cref="Headroom"/>).</summary>
    public bool IsBackground => Headroom > 0;

    /// <summary>
    /// Gets the request's fingerprint for shared claims (<see cref="RequestFingerprint"/>, see
    /// <see cref="IBackendReservationStore"/>), the same on every process for the same request; 0 when the request never
    /// claims (background, a body that cannot be read again, or reservations are not shared).
    /// </summary>
    public long Claimant { get; }

    /// <summary>
    /// Gets the shared reservations refused to this request in this round, or <see langword="null"/> (see
    /// <see cref="ReservationRefusals"/>): their refills count in the exhausted answer.
    /// </summary>
    public ReservationRefusals? Refusals { get; }

    /// <summary>Returns the same route with another set of excluded backends.</summary>
    public RequestRoute WithExcluded(BackendSet excluded) => new(Partition, Model, Cost, excluded, Held, Headroom, Refusals, Claimant);

    /// <summary>Returns the same route holding <paramref name="held"/>, a released waiter's room.</summary>
    public RequestRoute WithHeld(BudgetHold? held) => new(Partition, Model, Cost, Excluded, held, Headroom, Refusals, Claimant);

    /// <summary>Returns the route of the same request on another model of its fallback chain (a refusal is per key: it stays).</summary>
    public RequestRoute ForModel(ModelRoute model, BackendSet? excluded) => new(Partition, model, Cost, excluded, null, Headroom, Refusals, Claimant);

    /// <summary>
    /// Returns the same route remembering that <paramref name="key"/>'s reservation was refused until <paramref name="until"/>
    /// (<paramref name="claimed"/>: the store set room aside for this request then).
    /// </summary>
    public RequestRoute WithRefusal(BackendStateKey key, DateTimeOffset until, bool claimed = false)
    {
        var refusals = Refusals ?? new ReservationRefusals();
        refusals.Add(key, until, claimed);
        return new(Partition, Model, Cost, Excluded, Held, Headroom, refusals, Claimant);
    }

    /// <summary>Returns the same route without refusals (but the claims still held): a new round, in which every backend may be asked again.</summary>
    public RequestRoute WithoutRefusals() => Refusals is null ? this : new(Partition, Model, Cost, Excluded, Held, Headroom, Refusals.NextRound(), Claimant);

    /// <summary>Returns the throttle partition of this request on <paramref name="backend"/>.</summary>
    public string? PartitionOn(RoutedBackend backend) => Model?.DeploymentOn(backend)?.Name ?? Partition;

    /// <summary>
    /// Returns the backends this request's exhausted answer and slot waits count: its model's (else all of
    /// <paramref name="backends"/>), minus those its plan disallowed.
    /// </summary>
    public IReadOnlyList<RoutedBackend> BackendsOf(IReadOnlyList<RoutedBackend> backends)
    {
        backends = Model?.Backends ?? backends;
        if (Excluded is { } excluded)
        {
            // Only on the exhausted path of a restricted request (affinity, hints): allocating the list is fine.
            backends = [.. backends.Where(backend => !excluded.Contains(backend.Index))];
        }

        return backends;
    }
}
