namespace Polly.PriorityRouting.SdkTests.Support;

/// <summary>Three fake services, "a", "b" and "c", started before each test and stopped after it.</summary>
public abstract class FakeBackendsTestBase : IAsyncLifetime
{
    internal FakeOpenAIBackend A { get; private set; } = null!;

    internal FakeOpenAIBackend B { get; private set; } = null!;

    internal FakeOpenAIBackend C { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var started = await Task.WhenAll(
            FakeOpenAIBackend.StartAsync("a"),
            FakeOpenAIBackend.StartAsync("b"),
            FakeOpenAIBackend.StartAsync("c"));
        (A, B, C) = (started[0], started[1], started[2]);
    }

    public async Task DisposeAsync()
    {
        await A.DisposeAsync();
        await B.DisposeAsync();
        await C.DisposeAsync();
    }
}
