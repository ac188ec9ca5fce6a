namespace Polly.PriorityRouting;

/// <summary>
/// The clock whose default affinity store (<see cref="InMemoryAffinityStore.SharedOn"/>) a container's pipelines use when
/// they configure no store and the container registers none: the clock of the first pipeline built, kept for every
/// later build. A <see cref="TimeProvider"/> registered as transient gives each build (the first, and every options
/// reload) an instance of its own; keyed on each, every reload would start an empty store and lose the soft-affinity
/// pins. On the system clock this is <see cref="InMemoryAffinityStore.Shared"/>, as without DI.
/// </summary>
internal sealed class DefaultAffinityClock
{
    private TimeProvider? _first;

    /// <summary>Returns the default store of a pipeline built on <paramref name="timeProvider"/>: the first build's clock's.</summary>
    public InMemoryAffinityStore StoreFor(TimeProvider timeProvider)
        => InMemoryAffinityStore.SharedOn(Interlocked.CompareExchange(ref _first, timeProvider, null) ?? timeProvider);
}
