namespace Polly.PriorityRouting;

/// <summary>
/// The budget a backend declares in its options (<see cref="PriorityBackend.TokensPerMinute"/>,
/// <see cref="PriorityBackend.RequestsPerMinute"/>), which the budget view starts from until an answer reports one.
/// </summary>
internal sealed class DeclaredQuota
{
    /// <summary>The refill window of a declared quota: the quotas are per minute.</summary>
    public static readonly TimeSpan Window = TimeSpan.FromMinutes(1);

    private DeclaredQuota(long? tokens, long? requests)
    {
        Tokens = tokens;
        Requests = requests;
    }

    /// <summary>Gets the declared tokens per minute, or <see langword="null"/>.</summary>
    public long? Tokens { get; }

    /// <summary>Gets the declared requests per minute, or <see langword="null"/>.</summary>
    public long? Requests { get; }

    /// <summary>Returns the quota a backend declares; <see langword="null"/> when it declares none.</summary>
    public static DeclaredQuota? Create(int? tokensPerMinute, int? requestsPerMinute)
        => tokensPerMinute is null && requestsPerMinute is null ? null : new DeclaredQuota(tokensPerMinute, requestsPerMinute);
}
