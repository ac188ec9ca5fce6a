namespace PriorityRouting.Demo;

/// <summary>
/// One fake Azure OpenAI deployment: its routing priority and the requests-per-minute quota it enforces.
/// </summary>
internal sealed record FakeBackendSpec(string Name, int Priority, int RequestsPerMinute)
{
    public double RequestsPerSecond => RequestsPerMinute / 60.0;

    /// <summary>
    /// A reserved (PTU) deployment used first, and two pay-as-you-go deployments that absorb what it cannot take.
    /// </summary>
    public static IReadOnlyList<FakeBackendSpec> Default { get; } =
    [
        new("ptu", Priority: 1, RequestsPerMinute: 480),
        new("paygo-east", Priority: 2, RequestsPerMinute: 600),
        new("paygo-west", Priority: 2, RequestsPerMinute: 600),
    ];
}
