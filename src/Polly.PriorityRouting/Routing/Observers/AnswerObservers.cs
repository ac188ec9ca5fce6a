namespace Polly.PriorityRouting;

/// <summary>
/// The observers of one strategy, built once from the enabled features, in this order: body watching (first byte,
/// stalls, broken streams), budgets (the reported rate-limit budgets, and proactive throttling), affinity (pins ids
/// the answer creates, renews soft keys). A feature that is off has no observer: the loop does not ask. Body watching is
/// always on.
/// </summary>
internal sealed class AnswerObservers
{
    private readonly IAnswerObserver[] _observers;

    public AnswerObservers(PriorityRoutingStrategyOptions options, BackendPool pool, RoutingTelemetry telemetry, TimeProvider timeProvider, AffinityRouter? affinity)
    {
        // Every body that goes back is watched: how it ends is its backend's health.
        var observers = new List<IAnswerObserver> { new BodyWatchingObserver(ResponseBodyWatcher.Create(options, pool, telemetry, timeProvider)) };

        if (options.TokenBudgets || options.ProactiveThrottling)
        {
            observers.Add(new BudgetObserver(pool, telemetry));
        }

        if (affinity is not null)
        {
            observers.Add(new AffinityObserver(affinity));
        }

        _observers = [.. observers];
    }

    /// <summary>Runs the observers in order until one fails the attempt or sees the caller cancel.</summary>
    /// <remarks>Synchronous, with no state machine, while every observer completes at once: the common answer.</remarks>
    public ValueTask<AnswerVerdict> ObserveAsync(in ReturnedAnswer answer)
    {
        var deferHealth = false;
        for (var i = 0; i < _observers.Length; i++)
        {
            var observing = _observers[i].ObserveAsync(answer);
            if (!observing.IsCompletedSuccessfully)
            {
                return ContinueAsync(observing, i, answer, deferHealth);
            }

            var verdict = observing.Result;
            if (!verdict.IsAccepted)
            {
                return new(verdict);
            }

            deferHealth |= verdict.DeferHealth;
        }

        return new(deferHealth ? AnswerVerdict.HealthDeferred : AnswerVerdict.Accepted);
    }

    private async ValueTask<AnswerVerdict> ContinueAsync(ValueTask<AnswerVerdict> observing, int index, ReturnedAnswer answer, bool deferHealth)
    {
        var continueOnCapturedContext = answer.Context.ContinueOnCapturedContext;
        for (var i = index; ; observing = _observers[i].ObserveAsync(answer))
        {
            var verdict = await observing.ConfigureAwait(continueOnCapturedContext);
            if (!verdict.IsAccepted)
            {
                return verdict;
            }

            deferHealth |= verdict.DeferHealth;
            if (++i == _observers.Length)
            {
                return deferHealth ? AnswerVerdict.HealthDeferred : AnswerVerdict.Accepted;
            }
        }
    }
}
