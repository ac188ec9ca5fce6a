namespace Polly.PriorityRouting;

/// <summary>
/// What waiting for a response's first byte decided: the attempt returns its response (its health verdict deferred to
/// the body's end or not), fails over with a timeout or transport error, or stops because the caller cancelled.
/// </summary>
internal readonly struct BodyPreparation
{
    private BodyPreparation(Outcome<HttpResponseMessage>? failure, bool deferHealth, bool canceled)
    {
        Failure = failure;
        DeferHealth = deferHealth;
        IsCanceled = canceled;
    }

    /// <summary>Gets the attempt's failure (the response is already disposed), or <see langword="null"/>.</summary>
    public Outcome<HttpResponseMessage>? Failure { get; }

    /// <summary>Gets a value indicating whether the body reports the backend's health when it ends.</summary>
    public bool DeferHealth { get; }

    /// <summary>Gets a value indicating whether the caller cancelled while waiting (the response is already disposed).</summary>
    public bool IsCanceled { get; }

    public static BodyPreparation Ready(bool deferHealth) => new(null, deferHealth, canceled: false);

    public static BodyPreparation Failed(Exception exception) => new(Outcome.FromException<HttpResponseMessage>(exception), deferHealth: false, canceled: false);

    public static BodyPreparation Canceled() => new(null, deferHealth: false, canceled: true);
}
