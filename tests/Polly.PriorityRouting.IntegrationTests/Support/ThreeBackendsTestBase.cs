namespace Polly.PriorityRouting.IntegrationTests.Support;

/// <summary>
/// Starts three fresh Kestrel backends, named a, b and c, for each test, and stops them afterwards.
/// </summary>
public abstract class ThreeBackendsTestBase : IAsyncLifetime
{
    private protected FakeBackend A { get; private set; } = null!;

    private protected FakeBackend B { get; private set; } = null!;

    private protected FakeBackend C { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        A = await FakeBackend.StartAsync("a");
        B = await FakeBackend.StartAsync("b");
        C = await FakeBackend.StartAsync("c");
    }

    public async Task DisposeAsync()
    {
        await A.DisposeAsync();
        await B.DisposeAsync();
        await C.DisposeAsync();
    }
}
