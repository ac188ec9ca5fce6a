namespace Polly.PriorityRouting;

/// <summary>
/// The observers of one strategy, built once from the enabled features, in this order: context-length answers (the
/// request moves to a larger model), body watching (first byte, stalls, broken streams), budgets (the reported
/// rate-limit budgets, and proactive throttling), affinity (pins ids the answer creates, renews soft keys), the served
/// model's header. A feature that is off has no observer: the loop does not ask.
/// </summary>
internal sealed class AnswerObservers
{
    private readonly IAnswerObserver[] _observers;

    public AnswerObservers(PriorityRoutingStrategyOptions options, BackendPool pool, RoutingTelemetry telemetry, TimeProvider timeProvider, AffinityRouter? affinity)
    {
        var observers = new List<IAnswerObserver>();
        if (options.ContextWindowFallbacks.Count > 0)
        {
            // First: an answer that moves the request to a larger model is no answer for the others to observe.
            observers.Add(ContextWindowObserver.Instance);
        }

        if (ResponseBodyWatcher.Create(options, pool, telemetry, timeProvider) is { } bodies)
        {
            observers.Add(new BodyWatchingObserver(bodies));
        }

        if (options.TokenBudgets || options.ProactiveThrottling)
        {
            observers.Add(new BudgetObserver(pool, telemetry));
        }

        if (affinity is not null)
        {
            observers.Add(new AffinityObserver(affinity));
        }

        if (pool.Models is not null)
        {
            observers.Add(ModelHeaderObserver.Instance);
        }

        _observers = [.. observers];
    }

    /// <summary>Runs the observers in order until one fails the attempt or sees the caller cancel.</summary>
    public async ValueTask<AnswerVerdict> ObserveAsync(ReturnedAnswer answer)
    {
        var deferHealth = false;
        foreach (var observer in _observers)
        {
            var verdict = await observer.ObserveAsync(answer).ConfigureAwait(answer.Context.ContinueOnCapturedContext);
            if (!verdict.IsAccepted)
            {
                return verdict;
            }

            deferHealth |= verdict.DeferHealth;
        }

        return deferHealth ? AnswerVerdict.HealthDeferred : AnswerVerdict.Accepted;
    }
}
