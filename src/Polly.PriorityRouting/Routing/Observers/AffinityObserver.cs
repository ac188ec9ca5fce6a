namespace Polly.PriorityRouting;

/// <summary>
/// Affinity as an observer: ids the answer creates are learned as it streams (and pinned before the caller can read
/// them), a DELETE forgets its id, and a soft key follows the backend that served it.
/// </summary>
internal sealed class AffinityObserver(AffinityRouter router) : IAnswerObserver
{
    public ValueTask<AnswerVerdict> ObserveAsync(in ReturnedAnswer answer)
        => answer.Affinity.IsEmpty ? new(AnswerVerdict.Accepted) : LearnAsync(answer);

    private async ValueTask<AnswerVerdict> LearnAsync(ReturnedAnswer answer)
    {
        await router.ObserveAsync(answer.Affinity, answer.Response, answer.Lease.Backend, answer.Context.CancellationToken)
            .ConfigureAwait(answer.Context.ContinueOnCapturedContext);
        return AnswerVerdict.Accepted;
    }
}
