namespace PriorityRouting.Demo;

/// <summary>
/// One burst through one client configuration, and what each backend saw of it.
/// </summary>
internal sealed record ScenarioResult(string Title, BurstResult Burst, IReadOnlyList<FakeAzureOpenAiBackend> Backends);
