namespace Polly.PriorityRouting.SdkTests.Support;

/// <summary>
/// A weighted choice without luck: the options' <c>Randomizer</c> answers 0, 1, 2, … in turn (modulo the bound), so
/// every run of total-weight picks over one set of candidates gives each backend exactly its weight's share.
/// </summary>
internal static class DrawsInTurn
{
    /// <summary>Makes <paramref name="options"/>' weighted choice deterministic and returns them.</summary>
    public static PriorityRoutingStrategyOptions Apply(PriorityRoutingStrategyOptions options)
    {
        var draws = 0;
        options.Randomizer = bound => Interlocked.Increment(ref draws) % bound;
        return options;
    }
}
