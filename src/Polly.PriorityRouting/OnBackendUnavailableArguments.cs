namespace Polly.PriorityRouting;

/// <summary>
/// The arguments of <see cref="PriorityRoutingStrategyOptions.OnBackendUnavailable"/>.
/// </summary>
public readonly struct OnBackendUnavailableArguments
{
    /// <summary>
    /// Initializes a new instance of the <see cref="OnBackendUnavailableArguments"/> struct.
    /// </summary>
    /// <param name="context">The resilience context of the execution.</param>
    /// <param name="outcome">The handled outcome that took the backend out of rotation.</param>
    /// <param name="backendName">The backend's name.</param>
    /// <param name="priority">The backend's priority tier.</param>
    /// <param name="reason">Why the backend is unavailable.</param>
    /// <param name="cooldown">How long the backend stays out of rotation, after clamping.</param>
    /// <param name="attemptNumber">The zero-based number of the attempt within the execution.</param>
    public OnBackendUnavailableArguments(
        ResilienceContext context,
        Outcome<HttpResponseMessage> outcome,
        string backendName,
        int priority,
        BackendUnavailableReason reason,
        TimeSpan cooldown,
        int attemptNumber)
    {
        Context = context;
        Outcome = outcome;
        BackendName = backendName;
        Priority = priority;
        Reason = reason;
        Cooldown = cooldown;
        AttemptNumber = attemptNumber;
    }

    /// <summary>Gets the handled outcome that took the backend out of rotation.</summary>
    /// <remarks>The response, if any, is disposed once the callback returns.</remarks>
    public Outcome<HttpResponseMessage> Outcome { get; }

    /// <summary>Gets the resilience context of the execution.</summary>
    public ResilienceContext Context { get; }

    /// <summary>Gets the backend's name.</summary>
    public string BackendName { get; }

    /// <summary>Gets the backend's priority tier.</summary>
    public int Priority { get; }

    /// <summary>Gets why the backend is unavailable.</summary>
    public BackendUnavailableReason Reason { get; }

    /// <summary>Gets how long the backend stays out of rotation, after clamping to the configured maximum.</summary>
    public TimeSpan Cooldown { get; }

    /// <summary>Gets the zero-based number of the attempt within the execution.</summary>
    public int AttemptNumber { get; }
}
