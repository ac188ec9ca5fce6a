namespace Polly.PriorityRouting;

/// <summary>What the observers made of an answer: it goes back (its health verdict now or when its body ends), it fails over, or the caller cancelled.</summary>
internal readonly struct AnswerVerdict
{
    private AnswerVerdict(Outcome<HttpResponseMessage>? failure, bool deferHealth, bool canceled, bool movesToLargerModel = false)
    {
        Failure = failure;
        DeferHealth = deferHealth;
        IsCanceled = canceled;
        MovesToLargerModel = movesToLargerModel;
    }

    /// <summary>Gets the verdict of an answer that goes back, the backend healthy now.</summary>
    public static AnswerVerdict Accepted => default;

    /// <summary>Gets the verdict of an answer that goes back, whose body reports the backend's health when it ends.</summary>
    public static AnswerVerdict HealthDeferred => new(null, deferHealth: true, canceled: false);

    /// <summary>Gets the verdict of an answer the caller cancelled while an observer read it (the response is already disposed).</summary>
    public static AnswerVerdict Canceled => new(null, deferHealth: false, canceled: true);

    /// <summary>
    /// Gets the verdict of an answer saying the prompt does not fit the model (the response is already disposed): the
    /// request moves to a larger model, the backend stays in rotation.
    /// </summary>
    public static AnswerVerdict LargerModel => new(null, deferHealth: false, canceled: false, movesToLargerModel: true);

    /// <summary>Gets the attempt's failure (the response is already disposed), or <see langword="null"/>.</summary>
    public Outcome<HttpResponseMessage>? Failure { get; }

    /// <summary>Gets a value indicating whether the answer's body reports the backend's health when it ends.</summary>
    public bool DeferHealth { get; }

    /// <summary>Gets a value indicating whether the caller cancelled while an observer waited (the response is already disposed).</summary>
    public bool IsCanceled { get; }

    /// <summary>Gets a value indicating whether the request moves to a larger model (see <see cref="LargerModel"/>).</summary>
    public bool MovesToLargerModel { get; }

    /// <summary>Gets a value indicating whether the answer goes back to the caller as it is.</summary>
    public bool IsAccepted => Failure is null && !IsCanceled && !MovesToLargerModel;

    /// <summary>Returns the verdict of an answer whose body was prepared to go back (<see cref="BodyPreparation"/>).</summary>
    public static AnswerVerdict From(BodyPreparation body)
        => new(body.Failure, body.DeferHealth, body.IsCanceled);
}
