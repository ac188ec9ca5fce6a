namespace Polly.PriorityRouting.Benchmarks;

/// <summary>
/// A strategy that only calls the next one: the price of being one Polly strategy in the pipeline, so that what priority
/// routing adds on top of that price can be told apart.
/// </summary>
internal sealed class PassThroughStrategy : ResilienceStrategy<HttpResponseMessage>
{
    protected override ValueTask<Outcome<HttpResponseMessage>> ExecuteCore<TState>(
        Func<ResilienceContext, TState, ValueTask<Outcome<HttpResponseMessage>>> callback,
        ResilienceContext context,
        TState state)
        => callback(context, state);
}
