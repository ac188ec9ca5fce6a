namespace Polly.PriorityRouting.SdkTests.Support;

/// <summary>One request as a fake backend received it, and when (the server's clock).</summary>
internal sealed record RecordedRequest(
    string Method, string Path, string Query, IReadOnlyDictionary<string, string> Headers, string Body, DateTimeOffset ReceivedAt);
