namespace Polly.PriorityRouting;

/// <summary>
/// Budgets as an observer: the rate-limit budget an answer reports updates the budget view, and with proactive
/// throttling an answer that says its budget is spent takes the backend out of rotation before anyone pays a 429.
/// </summary>
internal sealed class BudgetObserver(BackendPool pool, RoutingTelemetry telemetry) : IAnswerObserver
{
    public async ValueTask<AnswerVerdict> ObserveAsync(ReturnedAnswer answer)
    {
        var context = answer.Context;
        if (await pool.ObserveBudgetAsync(answer.Lease.Backend, answer.Response, answer.Route, context.CancellationToken)
                .ConfigureAwait(context.ContinueOnCapturedContext) is { } spent)
        {
            await telemetry.BackendMarkedAsync(context, Outcome.FromResult(answer.Response), answer.Lease.Backend, spent, answer.Attempt, proactive: true)
                .ConfigureAwait(context.ContinueOnCapturedContext);
        }

        return AnswerVerdict.Accepted;
    }
}
