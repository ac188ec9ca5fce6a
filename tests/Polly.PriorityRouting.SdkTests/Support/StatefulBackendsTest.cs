namespace Polly.PriorityRouting.SdkTests.Support;

/// <summary>
/// A test class over three equal-weight stateful backends ("a", "b", "c") that each keep their own ids and answer 404 for
/// the others', started before each test and stopped after it.
/// </summary>
public abstract class StatefulBackendsTest : IAsyncLifetime
{
    /// <summary>Gets the three backends.</summary>
    private protected FakeStatefulOpenAIBackend[] Backends { get; private set; } = [];

    /// <inheritdoc/>
    public async Task InitializeAsync()
        => Backends = await Task.WhenAll(FakeStatefulOpenAIBackend.StartAsync("a"), FakeStatefulOpenAIBackend.StartAsync("b"), FakeStatefulOpenAIBackend.StartAsync("c"));

    /// <inheritdoc/>
    public async Task DisposeAsync()
    {
        foreach (var backend in Backends)
        {
            await backend.DisposeAsync();
        }
    }
}
