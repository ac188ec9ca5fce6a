namespace Polly.PriorityRouting;

/// <summary>
/// Estimates what a request costs against a token budget, as Azure OpenAI admits it: the prompt's tokens plus the
/// requested output cap (<c>max_tokens</c>, <c>max_completion_tokens</c> or <c>max_output_tokens</c>, times <c>n</c>).
/// Reads the OpenAI / Azure OpenAI chat completions, responses, completions and embeddings request shapes.
/// </summary>
/// <remarks>
/// The prompt is counted from the UTF-8 bytes of the strings under <c>messages</c>, <c>input</c>, <c>prompt</c>,
/// <c>instructions</c>, <c>tools</c> and <c>functions</c>, at <see cref="BytesPerToken"/> bytes per token (a token id
/// given as a number counts one token); of a repeated property, the last counts, as the service reads it. Anything that
/// is not such a JSON body costs 0, which the token budget admits as if no budget were known (a reported request budget
/// still counts it as one request).
/// </remarks>
public static class OpenAIRequestCost
{
    /// <summary>The UTF-8 bytes of prompt text counted as one token by the estimate.</summary>
    public const int BytesPerToken = 4;

    /// <summary>
    /// Output caps above this (16,777,216 tokens, far beyond any model's output) count as this: the caller controls the
    /// number, and cap × <c>n</c> must never wrap around to a negative cost, which spending would add to a budget.
    /// </summary>
    internal const long MaxOutputCap = 1L << 24;

    /// <summary>The largest body read for an estimate (64 MB, the one cap of every body read); a larger body costs 0.</summary>
    public const int MaxBodyBytes = RequestBody.MaxBytes;

    /// <summary>
    /// Estimates the tokens of a request from its JSON body, read once for every feature that routes on it (and not again
    /// when the strategy has read it already).
    /// </summary>
    /// <param name="request">The request.</param>
    /// <returns>The estimated tokens; 0 when the request has no JSON body of a known shape.</returns>
    public static long Estimate(HttpRequestMessage request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return RequestBody.Of(request)?.Facts.EstimatedTokens ?? 0;
    }

    /// <summary>Estimates the tokens of a JSON request body.</summary>
    /// <param name="json">The UTF-8 JSON body.</param>
    /// <returns>The estimated tokens; 0 when the body is not a JSON object.</returns>
    public static long Estimate(ReadOnlySpan<byte> json) => RequestBodyFacts.Scan(json).EstimatedTokens;
}
