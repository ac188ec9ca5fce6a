namespace Polly.PriorityRouting;

/// <summary>What the observers made of an answer: it goes back (its health verdict now or when its body ends), it fails over, or the caller cancelled.</summary>
internal readonly struct AnswerVerdict
{
    private AnswerVerdict(Outcome<HttpResponseMessage>? failure, bool deferHealth, bool canceled)
    {
        Failure = failure;
        DeferHealth = deferHealth;
        IsCanceled = canceled;
    }

    /// <summary>Gets the verdict of an answer that goes back, the backend healthy now.</summary>
    public static AnswerVerdict Accepted => default;

    /// <summary>Gets the verdict of an answer that goes back, whose body reports the backend's health when it ends.</summary>
    public static AnswerVerdict HealthDeferred => new(null, deferHealth: true, canceled: false);

    /// <summary>Gets the attempt's failure (the response is already disposed), or <see langword="null"/>.</summary>
    public Outcome<HttpResponseMessage>? Failure { get; }

    /// <summary>Gets a value indicating whether the answer's body reports the backend's health when it ends.</summary>
    public bool DeferHealth { get; }

    /// <summary>Gets a value indicating whether the caller cancelled while an observer waited (the response is already disposed).</summary>
    public bool IsCanceled { get; }

    public bool IsAccepted => Failure is null && !IsCanceled;

    public static AnswerVerdict From(BodyPreparation body)
        => new(body.Failure, body.DeferHealth, body.IsCanceled);
}
