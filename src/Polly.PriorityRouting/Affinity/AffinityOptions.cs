using System.ComponentModel.DataAnnotations;

namespace Polly.PriorityRouting;

/// <summary>
/// Options of hard affinity: a request that refers to server-side state (a stored response, a file, a batch, a vector
/// store, a conversation, a container, an Assistants thread) goes to the backend that created it, and only there.
/// </summary>
/// <remarks>
/// Ids are learned from the answers that create them (the JSON <c>"id"</c>, or the first server-sent event of a stream)
/// without buffering the answer, and found in request paths and JSON bodies (<c>previous_response_id</c>,
/// <c>conversation</c>, <c>file_id</c>, <c>input_file_id</c>, <c>vector_store_ids</c>, …) of the OpenAI and Azure
/// OpenAI APIs (<c>/v1/…</c>, <c>/openai/v1/…</c>, <c>/openai/…?api-version=…</c>) — or of another API, by the
/// <see cref="IdExtractor"/> set. A request that carries no id is routed as before. When the pinned backend is throttled or ejected the request gets the exhausted answer with that
/// backend's own <c>Retry-After</c>; it is never sent to another backend.
/// </remarks>
public sealed class AffinityOptions
{
    /// <summary>The default <see cref="ResponseLifetime"/>: OpenAI keeps stored responses for 30 days.</summary>
    public static readonly TimeSpan DefaultResponseLifetime = TimeSpan.FromDays(30);

    /// <summary>The default <see cref="ResourceLifetime"/>.</summary>
    public static readonly TimeSpan DefaultResourceLifetime = TimeSpan.FromDays(365);

    /// <summary>The default <see cref="StickyLifetime"/>.</summary>
    public static readonly TimeSpan DefaultStickyLifetime = TimeSpan.FromMinutes(10);

    // The bounds of the lifetimes, checked by PriorityRoutingStrategyOptionsValidator (the [Range] attributes document
    // them to tools; nested options are not validated by data annotations).
    internal static readonly TimeSpan MinLifetime = TimeSpan.FromSeconds(1);
    internal static readonly TimeSpan MaxLifetime = TimeSpan.FromDays(3650);
    internal static readonly TimeSpan MaxStickyLifetime = TimeSpan.FromDays(1);

    /// <summary>
    /// Gets or sets a value indicating whether hard affinity is on.
    /// </summary>
    /// <value>The default value is <see langword="true"/>: it is a correctness feature.</value>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// Gets or sets the store of id pins.
    /// </summary>
    /// <value>
    /// The default value is <see langword="null"/>: the <see cref="IAffinityStore"/> registered in DI (the Redis store
    /// registers one), else <see cref="InMemoryAffinityStore.Shared"/> (on a pipeline whose <see cref="TimeProvider"/> is not
    /// the system's, a store shared by the pipelines on that clock, which expires pins on it).
    /// </value>
    public IAffinityStore? Store { get; set; }

    /// <summary>
    /// Gets or sets how long a stored response (and a conversation, and the reasoning items of a response) stays pinned
    /// after it was created.
    /// </summary>
    /// <value>The default value is 30 days.</value>
    [Range(typeof(TimeSpan), "00:00:01", "3650.00:00:00")]
    public TimeSpan ResponseLifetime { get; set; } = DefaultResponseLifetime;

    /// <summary>
    /// Gets or sets how long files, batches, vector stores, containers, threads and assistants — and ids of an
    /// <see cref="AffinityIdKind"/> without a lifetime of its own — stay pinned after they were created; a successful
    /// <c>DELETE</c> of the id forgets it at once.
    /// </summary>
    /// <value>The default value is 365 days.</value>
    [Range(typeof(TimeSpan), "00:00:01", "3650.00:00:00")]
    public TimeSpan ResourceLifetime { get; set; } = DefaultResourceLifetime;

    /// <summary>
    /// Gets or sets how long a soft-affinity key (<see cref="PriorityRoutingHints.AffinityKey"/>, or the
    /// body's <c>prompt_cache_key</c> or <c>user</c>) keeps its backend after its last successful request.
    /// </summary>
    /// <value>The default value is 10 minutes, about the lifetime of a prompt cache.</value>
    /// <remarks>
    /// Soft affinity prefers the key's backend while it is available; when it is throttled or fails, the request is
    /// routed normally and the key moves to the backend that answered.
    /// </remarks>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan StickyLifetime { get; set; } = DefaultStickyLifetime;

    /// <summary>
    /// Gets or sets what finds the ids in requests and answers.
    /// </summary>
    /// <value>
    /// The default value is <see cref="OpenAIAffinityIdExtractor.Instance"/>: the OpenAI and Azure OpenAI APIs. Set in
    /// code only; configuration does not bind it.
    /// </value>
    [Required]
    public AffinityIdExtractor IdExtractor { get; set; } = OpenAIAffinityIdExtractor.Instance;
}
