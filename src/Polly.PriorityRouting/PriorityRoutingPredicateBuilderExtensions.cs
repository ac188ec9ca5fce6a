namespace Polly.PriorityRouting;

/// <summary>
/// Lets a <see cref="PredicateBuilder{TResult}"/> express <see cref="PriorityRoutingStrategyOptions.ShouldHandle"/>.
/// </summary>
public static class PriorityRoutingPredicateBuilderExtensions
{
    /// <summary>
    /// Converts the predicate built so far into a <see cref="PriorityRoutingStrategyOptions.ShouldHandle"/> predicate.
    /// </summary>
    /// <param name="builder">The predicate builder.</param>
    /// <returns>A predicate over <see cref="PriorityRoutingPredicateArguments"/>.</returns>
    /// <example>
    /// <code>
    /// options.ShouldHandle = new PredicateBuilder&lt;HttpResponseMessage&gt;()
    ///     .Handle&lt;HttpRequestException&gt;()
    ///     .HandleResult(r => r.StatusCode == HttpStatusCode.TooManyRequests)
    ///     .ToPriorityRoutingPredicate();
    /// </code>
    /// </example>
    public static Func<PriorityRoutingPredicateArguments, ValueTask<bool>> ToPriorityRoutingPredicate(
        this PredicateBuilder<HttpResponseMessage> builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var predicate = builder.Build();
        return args => new ValueTask<bool>(predicate(args.Outcome));
    }
}
