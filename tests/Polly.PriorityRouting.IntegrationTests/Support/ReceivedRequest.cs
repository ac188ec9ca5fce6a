namespace Polly.PriorityRouting.IntegrationTests.Support;

internal sealed record ReceivedRequest(string Method, string Path, string Query, Dictionary<string, string> Headers, string Body);
