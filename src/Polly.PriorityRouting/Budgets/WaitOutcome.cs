namespace Polly.PriorityRouting;

/// <summary>How a caller's wait in the <see cref="WaitQueue"/> ended.</summary>
internal enum WaitOutcome
{
    /// <summary>Not queued: the promised refill comes beyond the bound, or the queue is full or disposed.</summary>
    NotQueued,

    /// <summary>The promised refill came (or the queue was disposed): try again.</summary>
    Released,

    /// <summary>The caller cancelled while waiting; it holds nothing.</summary>
    Canceled,
}
