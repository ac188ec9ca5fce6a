using Polly.PriorityRouting;

namespace Polly;

/// <summary>
/// Adds the priority routing strategy to a resilience pipeline.
/// </summary>
public static class PriorityRoutingResiliencePipelineBuilderExtensions
{
    /// <summary>
    /// Adds priority routing: each attempt goes to the best available backend, a throttled or failing backend is taken
    /// out of rotation (shared through <see cref="PriorityRoutingStrategyOptions.StateStore"/>) and the request moves on
    /// at once; when nothing is left the pipeline answers 429/503 with <c>Retry-After</c>.
    /// </summary>
    /// <param name="builder">The builder, typically the one of <c>AddResilienceHandler</c>.</param>
    /// <param name="options">The options.</param>
    /// <returns>The same builder.</returns>
    /// <remarks>
    /// Strategies added before this one (retry, total timeout) are outer: they see the exhausted answer. Strategies added
    /// after it (attempt timeout) are inner: they run once per backend attempt.
    /// </remarks>
    /// <exception cref="ArgumentNullException"><paramref name="builder"/> or <paramref name="options"/> is null.</exception>
    /// <exception cref="System.ComponentModel.DataAnnotations.ValidationException">The options are invalid; the message names the field.</exception>
    public static ResiliencePipelineBuilder<HttpResponseMessage> AddPriorityRouting(
        this ResiliencePipelineBuilder<HttpResponseMessage> builder,
        PriorityRoutingStrategyOptions options)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(options);

        PriorityRoutingStrategyOptionsValidator.ThrowIfInvalid(options);
        return builder.AddStrategy(
            context => new PriorityRoutingResilienceStrategy(
                options,
                builder.TimeProvider ?? TimeProvider.System,
                context.Telemetry,
                builder.Name,
                builder.InstanceName),
            options);
    }
}
