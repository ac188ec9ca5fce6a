namespace Polly.PriorityRouting;

/// <summary>
/// Asks an <see cref="AffinityIdExtractor"/> what a request means for affinity: from the request, then — only when it
/// asks — from its body, the one read of it (<see cref="RequestBody"/>): the OpenAI extractor takes the facts that read
/// found, a custom one the bytes. An extractor that throws means "no id".
/// </summary>
internal static class AffinityRequestReader
{
    public static AffinityRequest Read(AffinityIdExtractor extractor, HttpRequestMessage request, RequestBody? body)
    {
        AffinityRequest parsed;
        try
        {
            parsed = extractor.Extract(request);
            if (parsed.ReadsBody && body is not null)
            {
                parsed = extractor is OpenAIAffinityIdExtractor
                    ? AffinityRequestParser.ParseBody(body.Facts, parsed)
                    : extractor.ExtractFromBody(request, body.Bytes.Span, parsed);
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Bad input never fails routing: the request is routed as one without ids.
            return default;
        }

        return Valid(parsed);
    }

    /// <summary>Whether the extractor reads the body's bytes itself (the body's facts are all the OpenAI one needs).</summary>
    public static bool ReadsBytes(AffinityIdExtractor extractor) => extractor is not OpenAIAffinityIdExtractor;

    /// <summary>Drops a referenced id that cannot be kept: the request is then routed normally.</summary>
    private static AffinityRequest Valid(AffinityRequest parsed)
        => parsed.Referenced.IsEmpty || AffinityId.IsValid(parsed.Referenced.Value) ? parsed : parsed with { Referenced = default, DeletesReferenced = false };
}
