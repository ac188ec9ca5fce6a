namespace Polly.PriorityRouting.Tests.Support;

/// <summary>Builds a selector the way a pipeline does: backends sorted by tier, availability read from a store.</summary>
internal static class Selectors
{
    public static BackendSelector Create(IEnumerable<PriorityBackend> backends, IBackendStateStore store, Func<int, int> randomizer)
        => new(BackendPool.Route(backends), Availability(store), randomizer);

    public static BackendAvailability Availability(IBackendStateStore store) => new(store, null, TimeSpan.FromDays(1));
}
