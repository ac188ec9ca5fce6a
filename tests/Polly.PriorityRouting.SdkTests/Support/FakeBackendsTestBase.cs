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

    /// <summary>
    /// Throttles A and B for 30 s and routes over A, B, C as tiers 1, 2, 3, each with its own key in
    /// <paramref name="header"/>: <paramref name="key"/> of the backend's name.
    /// </summary>
    internal SdkClientHost RouteOverThrottledTiersWithOwnKeys(string header, Func<string, string> key)
    {
        A.ThrottleFor(TimeSpan.FromSeconds(30));
        B.ThrottleFor(TimeSpan.FromSeconds(30));
        return new SdkClientHost(SdkClientHost.Route(
            (A, 1, header, key(A.Name)), (B, 2, header, key(B.Name)), (C, 3, header, key(C.Name))));
    }

    /// <summary>Each of A, B, C was called once, with its own key and nothing else in <paramref name="header"/>.</summary>
    internal void EachWasCalledOnceWithItsOwnKey(string header, Func<string, string> key)
    {
        (A.Hits, B.Hits, C.Hits).Should().Be((1, 1, 1));
        foreach (var backend in new[] { A, B, C })
        {
            backend.Received.Single().Request.Headers[header].Should().Be(key(backend.Name), "each backend receives only its own key");
        }
    }

    public async Task DisposeAsync()
    {
        await A.DisposeAsync();
        await B.DisposeAsync();
        await C.DisposeAsync();
    }
}
