using System.ComponentModel.DataAnnotations;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Http.Resilience;

namespace Polly.PriorityRouting;

/// <summary>
/// The options of the priority routing strategy.
/// </summary>
/// <remarks>
/// The strategy sends each attempt to the best available backend: the lowest <see cref="PriorityBackend.Priority"/>
/// tier that still has a backend not throttled and not yet tried by this request, weighted-random within the tier.
/// A handled outcome takes the backend out of rotation for the time the service asked for and the request moves on at
/// once; when nothing is left the strategy answers <c>429</c> or <c>503</c> with the time until the soonest backend
/// frees up.
/// </remarks>
public class PriorityRoutingStrategyOptions : ResilienceStrategyOptions
{
    private IDictionary<string, IList<string>> _modelFallbacks = new Dictionary<string, IList<string>>(StringComparer.Ordinal);
    private IDictionary<string, IList<string>> _contextWindowFallbacks = new Dictionary<string, IList<string>>(StringComparer.Ordinal);

    /// <summary>
    /// Initializes a new instance of the <see cref="PriorityRoutingStrategyOptions"/> class.
    /// </summary>
    public PriorityRoutingStrategyOptions()
    {
        Name = PriorityRoutingConstants.StrategyType;
    }

    /// <summary>
    /// Gets or sets the backends to route to. At least one is required.
    /// </summary>
    [Required]
    [MinLength(1)]
    public IList<PriorityBackend> Backends { get; set; } = [];

    /// <summary>
    /// Gets or sets how long a backend stays out of rotation when a handled outcome carries no throttle signal
    /// (no <c>Retry-After</c>, <c>retry-after-ms</c>, <c>x-ms-retry-after-ms</c> or <c>x-ratelimit-reset-*</c>).
    /// </summary>
    /// <value>The default value is 10 seconds. It must be between zero and <see cref="MaxCooldown"/>.</value>
    [Range(typeof(TimeSpan), "00:00:00", "1.00:00:00")]
    public TimeSpan DefaultCooldown { get; set; } = PriorityRoutingConstants.DefaultCooldown;

    /// <summary>
    /// Gets or sets the upper bound of every cooldown, whatever a backend's headers say.
    /// </summary>
    /// <value>The default value is 5 minutes. It must be between zero and one day.</value>
    [Range(typeof(TimeSpan), "00:00:00", "1.00:00:00")]
    public TimeSpan MaxCooldown { get; set; } = PriorityRoutingConstants.DefaultMaxCooldown;

    /// <summary>
    /// Gets or sets the maximum number of attempts of one round of an execution.
    /// </summary>
    /// <value>
    /// The default value is <see langword="null"/>: each backend is tried at most once per round. A backend is never
    /// tried twice within one round, whatever this value. An execution is one round, unless it waits for a refill
    /// (<see cref="MaxQueueWait"/>): each release from a wait starts a new round, which may try a backend again.
    /// </value>
    [Range(PriorityRoutingConstants.MinAttempts, int.MaxValue)]
    public int? MaxAttempts { get; set; }

    /// <summary>
    /// Gets or sets the predicate that decides whether an outcome takes its backend out of rotation and moves the
    /// request on to the next backend.
    /// </summary>
    /// <value>
    /// The default handles <c>408</c>, <c>429</c>, every <c>5xx</c>, <see cref="HttpRequestException"/>,
    /// <see cref="Polly.Timeout.TimeoutRejectedException"/>, and a cancellation that the caller did not ask for.
    /// Other outcomes (<c>2xx</c>, <c>400</c>, <c>401</c>, <c>404</c>, …) go back to the caller unchanged.
    /// A <see cref="PredicateBuilder{TResult}"/> can be used through
    /// <see cref="PriorityRoutingPredicateBuilderExtensions.ToPriorityRoutingPredicate"/>.
    /// </value>
    [Required]
    public Func<PriorityRoutingPredicateArguments, ValueTask<bool>> ShouldHandle { get; set; } = DefaultShouldHandle;

    /// <summary>
    /// Gets or sets outlier ejection: backends failing several times in a row are ejected for a growing time.
    /// </summary>
    /// <value>On by default: 5 failures in a row, 30 seconds base, 5 minutes at most.</value>
    [Required]
    public OutlierEjectionOptions OutlierEjection { get; set; } = new();

    /// <summary>
    /// Gets or sets a value indicating whether a response reporting an exhausted budget
    /// (<c>x-ratelimit-remaining-requests: 0</c> or <c>x-ratelimit-remaining-tokens: 0</c>) takes its backend out of
    /// rotation until the matching <c>x-ratelimit-reset-*</c>, so that the next request does not pay a 429.
    /// </summary>
    /// <value>The default value is <see langword="true"/>. The response itself goes back to the caller untouched.</value>
    public bool ProactiveThrottling { get; set; } = true;

    /// <summary>
    /// Gets or sets how long a response may take, after its headers arrive, to make the first byte of its body
    /// available. A backend that sends headers and then nothing (a stuck model server) is treated as a timeout: the
    /// response is disposed, the backend is marked like any timeout, and the request fails over in the same call.
    /// </summary>
    /// <value>
    /// The default value is <see langword="null"/>: the attempt ends when the headers arrive, as without streaming. When
    /// set, it must be between 1 ms and one day. Bodies known to be empty (<c>HEAD</c>, <c>204</c>, <c>304</c>,
    /// <c>Content-Length: 0</c>) never wait. The byte read is not lost: the caller receives the whole body, still
    /// streamed. Response bodies are watched whatever this option (see <see cref="StreamStallTimeout"/>); with it, the
    /// first byte is read ahead inside the attempt.
    /// </value>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan? FirstByteTimeout { get; set; }

    /// <summary>
    /// Gets or sets how long a read of a response body that is already the caller's may wait for its next byte before
    /// the stream counts as stalled against the backend's health. Nothing is thrown into the caller's read loop: the
    /// read goes on, and only outlier ejection, metrics and logs learn of it.
    /// </summary>
    /// <value>
    /// The default value is <see langword="null"/>: stalls are not detected. When set, it must be between 1 ms and one
    /// day. Response bodies are watched whatever this option: an aborted body counts as a failure of its backend, and a
    /// backend counts as healthy only when its body ends well (or the caller stops reading after bytes arrived).
    /// </value>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan? StreamStallTimeout { get; set; }

    /// <summary>
    /// Gets or sets how the strategy chooses among the available backends of one tier.
    /// </summary>
    /// <value>
    /// The default value is <see cref="BackendSelectionMode.WeightedRandom"/>.
    /// <see cref="BackendSelectionMode.LatencyAware"/> also reads each answer's first byte ahead inside the attempt, to
    /// measure the time to first byte without counting the caller's own delay.
    /// </value>
    public BackendSelectionMode SelectionMode { get; set; }

    /// <summary>
    /// Gets or sets a value indicating whether the strategy keeps a budget view per backend (and partition) from the
    /// rate-limit headers of every answer (<c>x-ratelimit-remaining-tokens</c>, <c>-requests</c>, their <c>-limit-</c>
    /// and <c>-reset-</c> companions), skips a backend whose budget cannot admit the request's estimated cost (see
    /// <see cref="RequestCost"/>), and spreads the callers its exhausted answers send back over the budgets' refills.
    /// </summary>
    /// <value>
    /// The default value is <see langword="true"/>. A backend that reports no budget is routed to as without the view;
    /// <see langword="false"/> routes exactly as before the view existed.
    /// </value>
    public bool TokenBudgets { get; set; } = true;

    /// <summary>
    /// Gets or sets the function that estimates a request's cost in tokens for <see cref="TokenBudgets"/>; it runs once
    /// per execution, on the request with its body buffered.
    /// </summary>
    /// <value>
    /// The default value is <see langword="null"/>, meaning <see cref="OpenAIRequestCost.Estimate(HttpRequestMessage)"/>:
    /// prompt plus output cap for OpenAI / Azure OpenAI bodies, 0 for anything else. Return 0 when the cost is unknown:
    /// the token budget admits a request of cost 0 as if no budget were known; it still counts as one request against a
    /// request budget.
    /// </value>
    public Func<HttpRequestMessage, long>? RequestCost { get; set; }

    /// <summary>
    /// Gets or sets how long, at most, a request that no backend can take now may wait inside the strategy for the
    /// room its budget view promises it in a refill, instead of being answered 429 at once. Waiters are served first
    /// come, first served, and the capacity that returns goes to them before new arrivals; a request whose promised
    /// refill comes later than the bound (or that has already waited the bound) gets the exhausted answer at once, whose
    /// <c>Retry-After</c> is the moment it was promised.
    /// </summary>
    /// <value>
    /// The default value is <see langword="null"/>: no request waits, every exhausted request is answered at once. When
    /// set, it must be between 1 ms and one day, and <see cref="TokenBudgets"/> must be on (the wait is for room the
    /// budget view promises; a backend that reports no budget is never waited for — nor for a slot, when every backend
    /// left is at its <see cref="PriorityBackend.MaxConcurrentRequests"/>: then the request waits for the next slot
    /// given back, within the same bound). Keep it below the caller's
    /// timeout: a waiting request counts against it. A refill window (10 s for Azure OpenAI's per-minute quotas checked
    /// over 10 s windows) is a good bound.
    /// </value>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan? MaxQueueWait { get; set; }

    /// <summary>
    /// Gets or sets the share of each backend's known budget kept for foreground requests: a request marked
    /// <see cref="PriorityRoutingHints.Background"/> is admitted on a backend only while, after its cost, at least this
    /// fraction of the budget's limit (tokens and requests alike) remains; foreground requests ignore it. With
    /// <see cref="MaxQueueWait"/>, a foreground waiter is promised room in a refill before any background one, a
    /// background waiter's promise leaves the headroom free, and background waiters get only what foreground requests
    /// leave of a refill. Beyond the headroom, background requests also leave free the room promised to foreground
    /// callers sent back with an exhausted answer (their <c>Retry-After</c>) until those callers come back, or for one
    /// refill window at most: a foreground caller told to come back at a refill finds its room there.
    /// </summary>
    /// <value>
    /// <para>
    /// The default value is 0.2: background work may still use four fifths of a budget nobody else needs, and
    /// foreground requests always find a fifth of each refill window free however much background work is queued — at
    /// least the one sixth of a per-minute quota that Azure OpenAI admits per 10-second window, so a foreground burst
    /// arriving right behind a background batch is not throttled by it. Raise it when foreground traffic is bursty or
    /// large against the budget; lower it when background work must progress on a busy budget. It must be at least 0
    /// and less than 1; 0 turns request classes off (a background request routes like any other).
    /// </para>
    /// <para>
    /// The budget is the budget view's (<see cref="TokenBudgets"/>): reported by answers or declared
    /// (<see cref="PriorityBackend.TokensPerMinute"/>, <see cref="PriorityBackend.RequestsPerMinute"/>). A backend with no
    /// known budget, or no known limit, admits background requests like any other. The headroom is kept per process: on
    /// a shared store each replica keeps it in its own view, unless the store shares reservations
    /// (<see cref="IBackendReservationStore"/>: Redis with reservations on), whose shared budget keeps it across replicas.
    /// Besides the headroom, a background request leaves free what the foreground spent in a recent refill window less
    /// what it spent so far in the current one (halved for each window since), so a foreground burst later in a window
    /// finds the room background work would have taken in a lull; with no foreground it fades within a few windows.
    /// </para>
    /// </value>
    [Range(0.0, 1.0, MaximumIsExclusive = true)]
    public double BackgroundHeadroom { get; set; } = PriorityRoutingConstants.DefaultBackgroundHeadroom;

    /// <summary>
    /// Gets or sets the model fallback chains: a logical model → the logical models that take its requests, in order,
    /// when every backend serving it is unavailable or has failed in this call.
    /// </summary>
    /// <remarks>
    /// <para>
    /// The request goes on in the same call to the backends serving the next model of the requested model's list; the
    /// <c>/openai/deployments/{name}/</c> segment or the body's top-level <c>"model"</c> is rewritten to each backend's
    /// name for that model (its <see cref="PriorityBackend.Models"/> entry, else the logical name). A fallback is never
    /// used while any backend of the requested model, in any tier, is available to the request; the hints
    /// (<see cref="PriorityRoutingHints.OnlyBackends"/>, <see cref="PriorityRoutingHints.ExcludedBackends"/>,
    /// <see cref="PriorityRoutingHints.MaxPriority"/>) and drained backends narrow every model of the chain alike.
    /// <see cref="MaxAttempts"/> bounds the attempts per model. A request pinned to a backend by affinity, a request
    /// with <see cref="PriorityRoutingHints.NoFailover"/> or <see cref="PriorityRoutingHints.NoModelFallback"/> stays on
    /// its model. When the whole chain is exhausted, the exhausted answer's <c>Retry-After</c> is the soonest over every
    /// backend of the chain. Only the requested model's list is followed (a fallback's own list is not).
    /// </para>
    /// <para>
    /// Every answer from a backend carries <c>x-priority-routing-model: {the logical model that served}</c> when the
    /// pipeline has model maps or fallbacks. From configuration: <c>Routing:ModelFallbacks:{model}:{index}</c>. Names
    /// must be served by some backend, and a model may not fall back to itself nor through a cycle.
    /// </para>
    /// </remarks>
    /// <value>An empty, case-sensitive dictionary by default. Never <see langword="null"/>.</value>
    public IDictionary<string, IList<string>> ModelFallbacks
    {
        get => _modelFallbacks;
        set => _modelFallbacks = value ?? new Dictionary<string, IList<string>>(StringComparer.Ordinal);
    }

    /// <summary>
    /// Gets or sets the context-window fallback chains: a logical model → the logical models with larger context
    /// windows that take its requests, in order, when a backend answers that the prompt does not fit.
    /// </summary>
    /// <remarks>
    /// A backend's <c>400</c> whose error body has <c>"code":"context_length_exceeded"</c> (OpenAI's and Azure OpenAI's
    /// shape) moves the request, in the same call, to the next model of the list of the model that answered — not to
    /// another backend of the same model — and the backend is not marked unavailable: it answered correctly. Within the
    /// list, a model whose backends are all unavailable passes the request to the next one as well. Without a
    /// configured list, that <c>400</c> goes back to the caller unchanged. Only a <c>400</c> of a model that has a list is
    /// read, and at most 16 KB of it for at most 5 seconds; a body that is not that error reaches the caller intact. From configuration:
    /// <c>Routing:ContextWindowFallbacks:{model}:{index}</c>.
    /// </remarks>
    /// <value>An empty, case-sensitive dictionary by default. Never <see langword="null"/>.</value>
    public IDictionary<string, IList<string>> ContextWindowFallbacks
    {
        get => _contextWindowFallbacks;
        set => _contextWindowFallbacks = value ?? new Dictionary<string, IList<string>>(StringComparer.Ordinal);
    }

    /// <summary>
    /// Gets or sets a function that derives a throttle partition from the request, for services that throttle per
    /// partition rather than per host — Azure OpenAI throttles per deployment: use
    /// <see cref="ThrottlePartitions.AzureOpenAIDeployment"/>.
    /// </summary>
    /// <value>
    /// The default value is <see langword="null"/>: throttling applies to the whole backend. With a partition, a throttle
    /// is stored under <c>{backend}#{partition}</c> and only requests of that partition skip the backend; server errors,
    /// transport errors, timeouts and ejections still apply to the whole backend.
    /// </value>
    public Func<HttpRequestMessage, string?>? ThrottlePartitionKey { get; set; }

    /// <summary>
    /// Gets or sets the store that keeps which backends are unavailable.
    /// </summary>
    /// <value>
    /// The default value is <see langword="null"/>, meaning <see cref="InMemoryBackendStateStore.Shared"/>: every
    /// pipeline of the process shares what it learns, by backend name.
    /// </value>
    public IBackendStateStore? StateStore { get; set; }

    /// <summary>
    /// Gets or sets hard affinity: requests that refer to server-side state (a stored response, a file, a batch, …) go
    /// to the backend that created it, and only there.
    /// </summary>
    /// <value>On by default for OpenAI and Azure OpenAI requests; see <see cref="AffinityOptions"/>.</value>
    [Required]
    public AffinityOptions Affinity { get; set; } = new();

    /// <summary>
    /// Gets or sets a callback invoked when a backend is taken out of rotation.
    /// </summary>
    public Func<OnBackendUnavailableArguments, ValueTask>? OnBackendUnavailable { get; set; }

    /// <summary>
    /// Gets or sets a callback invoked when no backend is left to try and the strategy answers 429 or 503.
    /// </summary>
    public Func<OnBackendsExhaustedArguments, ValueTask>? OnBackendsExhausted { get; set; }

    /// <summary>
    /// Gets or sets the logger factory for the strategy's own logs (backend unavailable, exhausted answers).
    /// </summary>
    /// <value>
    /// The default value is <see langword="null"/>: no logs of its own (Polly's telemetry still reports the events).
    /// <c>AddPriorityRoutingHandler</c> sets it from DI.
    /// </value>
    public ILoggerFactory? LoggerFactory { get; set; }

    /// <summary>
    /// Gets or sets the meter factory that creates the <c>Polly.PriorityRouting</c> meter.
    /// </summary>
    /// <value>
    /// The default value is <see langword="null"/>: a process-wide meter. <c>AddPriorityRoutingHandler</c> sets it
    /// from DI.
    /// </value>
    public IMeterFactory? MeterFactory { get; set; }

    /// <summary>
    /// Returns a shallow copy (every option, including ones added later), for the DI registration to set services on
    /// without touching the monitored instance.
    /// </summary>
    internal PriorityRoutingStrategyOptions Clone() => (PriorityRoutingStrategyOptions)MemberwiseClone();

    /// <summary>
    /// Gets or sets the source of randomness for the weighted choice: given an exclusive upper bound, returns a value
    /// in [0, bound). Tests replace it to make choices deterministic.
    /// </summary>
    internal Func<int, int> Randomizer { get; set; } = Random.Shared.Next;

    /// <summary>
    /// Gets or sets a value indicating whether backend headers and tokens travel in the request options, to be applied
    /// by <see cref="BackendCredentialsHandler"/> below the logging handlers. Set by the DI registration, which installs
    /// that handler.
    /// </summary>
    internal bool DeferCredentials { get; set; }

    /// <summary>Gets or sets the <see cref="IAffinityStore"/> registered in DI, set by the DI registration.</summary>
    internal IAffinityStore? AffinityStoreFromServices { get; set; }

    /// <summary>
    /// Gets or sets where the strategy announces its live backends for snapshots and the health check; disposing what
    /// it returns withdraws them. Set by the DI registration.
    /// </summary>
    internal Func<BackendPool, IDisposable>? AttachPool { get; set; }

    private static ValueTask<bool> DefaultShouldHandle(PriorityRoutingPredicateArguments args)
        => new(HttpClientResiliencePredicates.IsTransient(args.Outcome) ||
               (args.Outcome.Exception is OperationCanceledException && !args.Context.CancellationToken.IsCancellationRequested));
}
