namespace Polly.PriorityRouting;

/// <summary>
/// Budgets as an observer: the rate-limit budget an answer reports updates the budget view, and with proactive
/// throttling an answer that says its budget is spent takes the backend out of rotation before anyone pays a 429.
/// </summary>
internal sealed class BudgetObserver(BackendPool pool, RoutingTelemetry telemetry) : IAnswerObserver
{
    public ValueTask<AnswerVerdict> ObserveAsync(in ReturnedAnswer answer)
    {
        var marking = pool.ObserveBudgetAsync(answer.Lease, answer.Response, answer.Route, answer.Started, answer.Context.CancellationToken);
        if (!marking.IsCompletedSuccessfully)
        {
            return ReportAsync(marking, answer);
        }

        return marking.Result is { } spent ? ReportAsync(new ValueTask<BackendVerdict?>(spent), answer) : new(AnswerVerdict.Accepted);
    }

    private async ValueTask<AnswerVerdict> ReportAsync(ValueTask<BackendVerdict?> marking, ReturnedAnswer answer)
    {
        var context = answer.Context;
        if (await marking.ConfigureAwait(context.ContinueOnCapturedContext) is { } spent)
        {
            await telemetry.BackendMarkedAsync(context, Outcome.FromResult(answer.Response), answer.Lease.Backend, spent, answer.Attempt, proactive: true)
                .ConfigureAwait(context.ContinueOnCapturedContext);
        }

        return AnswerVerdict.Accepted;
    }
}
