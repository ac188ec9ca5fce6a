using System.Net;

namespace Polly.PriorityRouting;

/// <summary>
/// The arguments of <see cref="PriorityRoutingStrategyOptions.OnBackendsExhausted"/>.
/// </summary>
public readonly struct OnBackendsExhaustedArguments
{
    /// <summary>
    /// Initializes a new instance of the <see cref="OnBackendsExhaustedArguments"/> struct.
    /// </summary>
    /// <param name="context">The resilience context of the execution.</param>
    /// <param name="statusCode">The status code of the synthetic answer: 429 or 503.</param>
    /// <param name="retryAfter">The time until the soonest backend becomes available again.</param>
    /// <param name="attemptCount">How many attempts the execution sent to backends.</param>
    public OnBackendsExhaustedArguments(ResilienceContext context, HttpStatusCode statusCode, TimeSpan retryAfter, int attemptCount)
    {
        Context = context;
        StatusCode = statusCode;
        RetryAfter = retryAfter;
        AttemptCount = attemptCount;
    }

    /// <summary>Gets the resilience context of the execution.</summary>
    public ResilienceContext Context { get; }

    /// <summary>
    /// Gets the status code of the synthetic answer: <see cref="HttpStatusCode.TooManyRequests"/> when any pending
    /// unavailability comes from throttling, otherwise <see cref="HttpStatusCode.ServiceUnavailable"/>.
    /// </summary>
    public HttpStatusCode StatusCode { get; }

    /// <summary>Gets the time until the soonest backend becomes available again (zero when one already is).</summary>
    public TimeSpan RetryAfter { get; }

    /// <summary>Gets how many attempts the execution sent to backends before giving up.</summary>
    public int AttemptCount { get; }
}
