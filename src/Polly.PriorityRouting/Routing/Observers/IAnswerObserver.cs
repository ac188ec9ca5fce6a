namespace Polly.PriorityRouting;

/// <summary>
/// Looks at an answer on its way back to the caller. The strategy runs a list of observers built from the enabled
/// features (see <see cref="AnswerObservers"/>), in order, after the predicate let the answer through.
/// </summary>
internal interface IAnswerObserver
{
    /// <summary>Observes an answer; may still turn it into a failure to fail over with, while the caller has seen nothing.</summary>
    /// <returns><see cref="AnswerVerdict.Accepted"/> to let the next observer see it; completed at once unless the observer has to wait.</returns>
    ValueTask<AnswerVerdict> ObserveAsync(in ReturnedAnswer answer);
}
