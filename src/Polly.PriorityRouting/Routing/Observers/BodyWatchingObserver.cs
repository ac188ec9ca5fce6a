namespace Polly.PriorityRouting;

/// <summary>
/// Body watching as an observer: the attempt is not over until the body's first byte (a backend that sends headers and
/// then nothing fails over while the caller has seen nothing), and the body's end reports its backend's health.
/// </summary>
internal sealed class BodyWatchingObserver(ResponseBodyWatcher watcher) : IAnswerObserver
{
    public ValueTask<AnswerVerdict> ObserveAsync(in ReturnedAnswer answer)
    {
        var context = answer.Context;
        var preparing = watcher.PrepareAsync(answer.Response, answer.Method, answer.Lease, answer.Started, context.ContinueOnCapturedContext, context.CancellationToken);
        return preparing.IsCompletedSuccessfully ? new(AnswerVerdict.From(preparing.Result)) : VerdictAsync(preparing, context.ContinueOnCapturedContext);
    }

    private static async ValueTask<AnswerVerdict> VerdictAsync(ValueTask<BodyPreparation> preparing, bool continueOnCapturedContext)
        => AnswerVerdict.From(await preparing.ConfigureAwait(continueOnCapturedContext));
}
