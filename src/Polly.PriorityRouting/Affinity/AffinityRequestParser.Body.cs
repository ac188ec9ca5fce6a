namespace Polly.PriorityRouting;

/// <summary>The body half of <see cref="AffinityRequestParser"/>: ids and soft-affinity keys in JSON request bodies.</summary>
internal static partial class AffinityRequestParser
{
    /// <summary>
    /// Completes a request that <see cref="Parse"/> found to need its body, from what the one read of the body found
    /// (<see cref="RequestBodyFacts"/>): the id it refers to, else its soft-affinity key; and whether a new response is
    /// stored.
    /// </summary>
    public static AffinityRequest ParseBody(in RequestBodyFacts body, AffinityRequest fromPath) => fromPath with
    {
        Referenced = body.Referenced,
        StickyKey = body.Referenced.IsEmpty ? body.StickyKey : null,
        CreatesUnstored = body.Unstored && fromPath.Creates == OpenAIAffinityKinds.Response,
    };
}
