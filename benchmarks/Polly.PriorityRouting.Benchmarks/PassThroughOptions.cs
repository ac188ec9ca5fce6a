namespace Polly.PriorityRouting.Benchmarks;

/// <summary>The options of <see cref="PassThroughStrategy"/>: none beyond a name.</summary>
internal sealed class PassThroughOptions : ResilienceStrategyOptions
{
    public PassThroughOptions() => Name = "PassThrough";
}
