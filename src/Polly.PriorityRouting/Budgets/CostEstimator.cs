namespace Polly.PriorityRouting;

/// <summary>
/// Estimates a request's cost in tokens for budget admission: the pipeline's <see cref="PriorityRoutingStrategyOptions.RequestCost"/>
/// when set, else the estimate of the one read of its body.
/// </summary>
internal sealed class CostEstimator
{
    private readonly bool _budgets;
    private readonly Func<HttpRequestMessage, long>? _requestCost;

    /// <param name="budgets">Whether budgets are on (else every cost is 0).</param>
    /// <param name="requestCost">The pipeline's estimate, or <see langword="null"/> for the body's.</param>
    public CostEstimator(bool budgets, Func<HttpRequestMessage, long>? requestCost)
    {
        _budgets = budgets;
        _requestCost = requestCost;
    }

    /// <summary>
    /// Estimates a request's cost in tokens once per execution: by default from the one read of its body; 0 when budgets
    /// are off or the estimate fails.
    /// </summary>
    public long Estimate(HttpRequestMessage request, RequestBody? body)
    {
        if (!_budgets)
        {
            return 0;
        }

        if (_requestCost is null)
        {
            return body?.Facts.EstimatedTokens ?? 0;
        }

        try
        {
            return Math.Max(0, _requestCost(request));
        }
        catch (Exception)
        {
            // An estimate is advice: a failing one routes as if the cost were unknown.
            return 0;
        }
    }
}
