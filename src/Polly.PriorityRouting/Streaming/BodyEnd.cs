namespace Polly.PriorityRouting;

/// <summary>How a watched response body ended, as far as its backend's health is concerned.</summary>
internal enum BodyEnd
{
    /// <summary>The body was read to its end: the backend is healthy.</summary>
    Completed,

    /// <summary>
    /// The caller disposed the body after bytes arrived and no read was waiting (an SDK that stops at <c>[DONE]</c>):
    /// the backend is healthy.
    /// </summary>
    Released,

    /// <summary>A read failed with the transport's exception: the backend failed.</summary>
    Aborted,

    /// <summary>A read waited longer than the stall timeout for its next byte: the backend failed.</summary>
    Stalled,

    /// <summary>The caller cancelled a read: says nothing about the backend.</summary>
    Canceled,

    /// <summary>Disposed before any byte arrived, or while a read was waiting: says nothing about the backend.</summary>
    Abandoned,
}
