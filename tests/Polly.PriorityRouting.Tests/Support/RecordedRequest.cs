namespace Polly.PriorityRouting.Tests.Support;

internal sealed record RecordedRequest(string Host, Uri Uri, Dictionary<string, string> Headers, string? Body);
