using System.Net;

namespace Polly.PriorityRouting;

/// <summary>
/// Recognises a backend's answer that the prompt does not fit its model — a <c>400</c> whose error body has
/// <c>"code":"context_length_exceeded"</c> — for a request that has a larger model to move to
/// (<see cref="PriorityRoutingStrategyOptions.ContextWindowFallbacks"/>). In the list only when some model has such a
/// list; it reads nothing of any other answer.
/// </summary>
/// <remarks>
/// It reads at most <see cref="ContextLengthError.MaxReadBytes"/> of the body, for at most <see cref="ContextLengthError.MaxReadTime"/>. An answer that is not that error goes
/// back with its body intact: the bytes read are put back in front of the rest (<see cref="ContextLengthError.Restore"/>).
/// </remarks>
internal sealed class ContextWindowObserver(TimeProvider timeProvider) : IAnswerObserver
{
    /// <remarks>
    /// A body watched already went back to a caller before — a transport returning one response object again (a cache,
    /// a stub) — and was read ahead then: it is not that error, and reading it again would put one more read-ahead
    /// wrapper (and its 16 KB) around it per request.
    /// </remarks>
    public ValueTask<AnswerVerdict> ObserveAsync(in ReturnedAnswer answer)
        => answer.CanMoveToLargerModel && answer.Response.StatusCode == HttpStatusCode.BadRequest && !WatchedContent.IsWatched(answer.Response.Content)
            ? ReadAsync(answer.Response, answer.Context)
            : new(AnswerVerdict.Accepted);

    private async ValueTask<AnswerVerdict> ReadAsync(HttpResponseMessage response, ResilienceContext context)
    {
        ContextLengthError.ReadAhead read;
        try
        {
            read = await ContextLengthError.ReadAsync(response.Content, timeProvider, context.CancellationToken).ConfigureAwait(context.ContinueOnCapturedContext);
        }
        catch (Exception) when (context.CancellationToken.IsCancellationRequested)
        {
            response.Dispose();
            return AnswerVerdict.Canceled;
        }
        catch (Exception)
        {
            // A body that breaks while being read is not that error: the caller reads the same break.
            return AnswerVerdict.Accepted;
        }

        if (read.IsContextLengthExceeded)
        {
            response.Dispose();
            return AnswerVerdict.LargerModel;
        }

        response.Content = ContextLengthError.Restore(response.Content, read);
        return AnswerVerdict.Accepted;
    }
}
