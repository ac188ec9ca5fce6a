using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Options;

namespace Polly.PriorityRouting;

/// <summary>
/// The options of the priority routing handler registered by <c>AddPriorityRoutingHandler</c>: from outer to inner,
/// a total request timeout, a retry that honours the exhausted answer's <c>Retry-After</c>, priority routing, and an
/// attempt timeout.
/// </summary>
public class PriorityRoutingHandlerOptions
{
    /// <summary>
    /// Gets or sets the priority routing options: backends, cooldowns, attempt cap.
    /// </summary>
    [Required]
#pragma warning disable SYSLIB1212 // Deliberately not [ValidateObjectMembers]: the cross-field validator reports every rule of Routing once, with its path.
    public PriorityRoutingStrategyOptions Routing { get; set; } = new();
#pragma warning restore SYSLIB1212

    /// <summary>
    /// Gets or sets the outer retry, which handles what comes out of routing — above all the exhausted 429/503 answer —
    /// and waits for its <c>retry-after-ms</c> / <c>Retry-After</c>, never past the time left in
    /// <see cref="TotalRequestTimeout"/>.
    /// </summary>
    /// <value>By default 3 retries, honouring <c>Retry-After</c>.</value>
    [Required]
    [ValidateObjectMembers]
    public HttpRetryStrategyOptions Retry { get; set; } = new()
    {
        MaxRetryAttempts = PriorityRoutingConstants.DefaultMaxRetryAttempts,
        ShouldRetryAfterHeader = true,
    };

    /// <summary>
    /// Gets or sets the timeout of the whole call, retries and waits included.
    /// </summary>
    /// <value>
    /// By default 5 minutes: a backend that hangs for a whole <see cref="AttemptTimeout"/>, then a full-length
    /// generation on another backend, and a wait for a throttle.
    /// </value>
    [Required]
    [ValidateObjectMembers]
    public HttpTimeoutStrategyOptions TotalRequestTimeout { get; set; } = new()
    {
        Timeout = PriorityRoutingConstants.DefaultTotalRequestTimeout,
        Name = "TotalRequestTimeout",
    };

    /// <summary>
    /// Gets or sets the timeout of one attempt on one backend; a backend that times out is failed over.
    /// </summary>
    /// <value>
    /// By default 100 seconds, what the OpenAI and Azure OpenAI SDKs allow one try (their <c>NetworkTimeout</c>). It must
    /// not exceed <see cref="TotalRequestTimeout"/>.
    /// </value>
    /// <remarks>
    /// The attempt ends when the response headers arrive: a streamed body is not cut by this timeout, and a
    /// non-streaming completion sends its headers only once it is generated. Shorter catches a hung backend sooner but
    /// cuts long generations, which the next backend then generates (and bills) again; for streams,
    /// <see cref="PriorityRoutingStrategyOptions.FirstByteTimeout"/> catches a backend that stalls after its headers.
    /// </remarks>
    [Required]
    [ValidateObjectMembers]
    public HttpTimeoutStrategyOptions AttemptTimeout { get; set; } = new()
    {
        Timeout = PriorityRoutingConstants.DefaultAttemptTimeout,
        Name = "AttemptTimeout",
    };

    /// <summary>Errors met while binding configuration, reported by validation with the field's path.</summary>
    internal List<string> BindingErrors { get; } = [];

    /// <summary>Gets or sets the path of a bound configuration section that does not exist, or <see langword="null"/>.</summary>
    internal string? MissingSection { get; set; }

    /// <summary>Gets or sets a value indicating whether the configuration did not bind: its errors are then the only ones reported.</summary>
    internal bool BindingFailed { get; set; }
}
