namespace Polly.PriorityRouting.Tests.Support;

/// <summary>A request the recording transport received, and the thread it was sent from.</summary>
internal sealed record RecordedRequest(string Host, Uri Uri, Dictionary<string, string> Headers, string? Body)
{
    /// <summary>Gets the managed thread the transport was called on.</summary>
    public int ThreadId { get; } = Environment.CurrentManagedThreadId;
}
