namespace Polly.PriorityRouting;

/// <summary>
/// The arguments of <see cref="PriorityRoutingStrategyOptions.ShouldHandle"/>.
/// </summary>
public readonly struct PriorityRoutingPredicateArguments
{
    /// <summary>
    /// Initializes a new instance of the <see cref="PriorityRoutingPredicateArguments"/> struct.
    /// </summary>
    /// <param name="context">The resilience context of the execution.</param>
    /// <param name="outcome">The outcome of the attempt.</param>
    /// <param name="backendName">The name of the backend the attempt was sent to.</param>
    /// <param name="priority">The priority tier of that backend.</param>
    public PriorityRoutingPredicateArguments(
        ResilienceContext context,
        Outcome<HttpResponseMessage> outcome,
        string backendName,
        int priority)
    {
        Context = context;
        Outcome = outcome;
        BackendName = backendName;
        Priority = priority;
    }

    /// <summary>Gets the outcome of the attempt.</summary>
    public Outcome<HttpResponseMessage> Outcome { get; }

    /// <summary>Gets the resilience context of the execution.</summary>
    public ResilienceContext Context { get; }

    /// <summary>Gets the name of the backend the attempt was sent to.</summary>
    public string BackendName { get; }

    /// <summary>Gets the priority tier of the backend the attempt was sent to.</summary>
    public int Priority { get; }
}
