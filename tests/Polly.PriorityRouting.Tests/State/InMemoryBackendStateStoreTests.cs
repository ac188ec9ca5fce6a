namespace Polly.PriorityRouting.Tests.State;

public class InMemoryBackendStateStoreTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task Unknown_backend_has_no_entry()
    {
        var store = new InMemoryBackendStateStore();
        await store.MarkUnavailableAsync(new BackendStateKey("a"), new(Now.AddSeconds(5), BackendUnavailableReason.Throttled), Now, default);

        store.TryGetUnavailability(new BackendStateKey("b"), out var state).Should().BeFalse();
        state.Should().Be(default(BackendUnavailability));
    }

    [Fact]
    public async Task Later_deadline_wins_whatever_the_order()
    {
        var store = new InMemoryBackendStateStore();
        var later = new BackendUnavailability(Now.AddSeconds(10), BackendUnavailableReason.Throttled);
        var sooner = new BackendUnavailability(Now.AddSeconds(2), BackendUnavailableReason.ServerError);

        await store.MarkUnavailableAsync(new BackendStateKey("a"), later, Now, default);
        await store.MarkUnavailableAsync(new BackendStateKey("a"), sooner, Now, default);
        store.TryGetUnavailability(new BackendStateKey("a"), out var state).Should().BeTrue();
        state.Should().Be(later);

        await store.MarkUnavailableAsync(new BackendStateKey("b"), sooner, Now, default);
        await store.MarkUnavailableAsync(new BackendStateKey("b"), later, Now, default);
        store.TryGetUnavailability(new BackendStateKey("b"), out state).Should().BeTrue();
        state.Should().Be(later);
    }

    [Fact]
    public void The_later_marking_time_is_kept_with_the_later_deadline_whatever_the_order()
    {
        var store = new InMemoryBackendStateStore();
        var key = new BackendStateKey("a");
        var far = new BackendUnavailability(Now.AddDays(365), BackendUnavailableReason.Throttled, Now);
        var fresh = new BackendUnavailability(Now.AddSeconds(6), BackendUnavailableReason.ServerError, Now.AddSeconds(5));

        store.Mark(key, far, Now).Should().BeTrue();
        store.Mark(key, fresh, Now.AddSeconds(5)).Should().BeFalse("the deadline is not extended");
        store.TryGetUnavailability(key, out var state).Should().BeTrue();
        (state.Until, state.Reason, state.MarkedAt).Should().Be((far.Until, BackendUnavailableReason.Throttled, fresh.MarkedAt));

        store.Mark(key, far, Now.AddSeconds(6)).Should().BeFalse("an older mark changes nothing");
        store.TryGetUnavailability(key, out state).Should().BeTrue();
        state.MarkedAt.Should().Be(fresh.MarkedAt);
    }

    [Fact]
    public async Task Concurrent_marks_keep_the_latest_deadline()
    {
        var store = new InMemoryBackendStateStore();
        var deadlines = Enumerable.Range(1, 2_000).Select(i => Now.AddMilliseconds(i)).ToArray();
        Random.Shared.Shuffle(deadlines);

        await Parallel.ForEachAsync(deadlines, new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (deadline, ct) =>
            await store.MarkUnavailableAsync(new BackendStateKey("a"), new(deadline, BackendUnavailableReason.Throttled), Now, ct));

        store.TryGetUnavailability(new BackendStateKey("a"), out var state).Should().BeTrue();
        state.Until.Should().Be(Now.AddMilliseconds(2_000));
    }

    [Fact]
    public async Task Expired_entries_are_swept_on_a_later_write()
    {
        var store = new InMemoryBackendStateStore();
        await store.MarkUnavailableAsync(new BackendStateKey("a"), new(Now.AddSeconds(1), BackendUnavailableReason.Throttled), Now, default);
        await store.MarkUnavailableAsync(new BackendStateKey("b"), new(Now.AddMinutes(10), BackendUnavailableReason.Throttled), Now, default);
        store.Count.Should().Be(2);

        var later = Now.AddMinutes(1);
        await store.MarkUnavailableAsync(new BackendStateKey("c"), new(later.AddSeconds(1), BackendUnavailableReason.Throttled), later, default);

        store.Count.Should().Be(2);
        store.TryGetUnavailability(new BackendStateKey("a"), out _).Should().BeFalse();
        store.TryGetUnavailability(new BackendStateKey("b"), out _).Should().BeTrue();
        store.TryGetUnavailability(new BackendStateKey("c"), out _).Should().BeTrue();
    }

    [Fact]
    public async Task Reset_and_clear_put_backends_back_into_rotation()
    {
        var store = new InMemoryBackendStateStore();
        await store.MarkUnavailableAsync(new BackendStateKey("a"), new(Now.AddSeconds(5), BackendUnavailableReason.Throttled), Now, default);
        await store.MarkUnavailableAsync(new BackendStateKey("b"), new(Now.AddSeconds(5), BackendUnavailableReason.Throttled), Now, default);

        store.Reset(new BackendStateKey("a")).Should().BeTrue();
        store.Reset(new BackendStateKey("a")).Should().BeFalse();
        store.TryGetUnavailability(new BackendStateKey("a"), out _).Should().BeFalse();

        store.Clear();
        store.Count.Should().Be(0);
    }

    [Fact]
    public async Task Reads_allocate_nothing()
    {
        var store = new InMemoryBackendStateStore();
        await store.MarkUnavailableAsync(new BackendStateKey("a"), new(Now.AddSeconds(5), BackendUnavailableReason.Throttled), Now, default);
        store.TryGetUnavailability(new BackendStateKey("a"), out _);

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1_000; i++)
        {
            store.TryGetUnavailability(new BackendStateKey("a"), out _);
            store.TryGetUnavailability(new BackendStateKey("missing"), out _);
        }

        (GC.GetAllocatedBytesForCurrentThread() - before).Should().Be(0);
    }

    [Fact]
    public void Shared_is_one_instance()
        => InMemoryBackendStateStore.Shared.Should().BeSameAs(InMemoryBackendStateStore.Shared);

    [Fact]
    public void Unavailability_is_active_strictly_before_its_deadline()
    {
        var state = new BackendUnavailability(Now, BackendUnavailableReason.Timeout);

        state.IsActiveAt(Now.AddTicks(-1)).Should().BeTrue();
        state.IsActiveAt(Now).Should().BeFalse();
        state.ToString().Should().Be("Timeout until 2026-11-24T12:00:00.0000000+00:00");
    }

    [Fact]
    public void Holds_at_most_its_capacity_and_sweeps_expired_partitions_when_full()
    {
        var store = new InMemoryBackendStateStore();
        for (var i = 0; i < 100_000; i++)
        {
            store.Mark(new BackendStateKey("ptu@https://ptu", "deployment-" + i), new(Now.AddSeconds(1), BackendUnavailableReason.Throttled), Now)
                .Should().BeTrue();
        }

        store.Mark(new BackendStateKey("ptu@https://ptu", "one-too-many"), new(Now.AddSeconds(1), BackendUnavailableReason.Throttled), Now)
            .Should().BeFalse("the store is full of active entries");
        store.Count.Should().Be(InMemoryBackendStateStore.DefaultCapacity);
        store.Mark(new BackendStateKey("ptu@https://ptu", "deployment-7"), new(Now.AddSeconds(5), BackendUnavailableReason.Throttled), Now)
            .Should().BeTrue("an existing entry is always extended");

        var later = Now.AddSeconds(2);
        store.Mark(new BackendStateKey("ptu@https://ptu"), new(later.AddSeconds(10), BackendUnavailableReason.ServerError), later).Should().BeTrue();

        store.Count.Should().Be(2, "a write to a full store sweeps what expired: deployment-7 and the new mark remain");
    }

    [Fact]
    public void Entries_of_one_backend_include_its_partitions()
    {
        var store = new InMemoryBackendStateStore();
        store.Mark(new BackendStateKey("a@http://a"), new(Now.AddSeconds(1), BackendUnavailableReason.ServerError), Now);
        store.Mark(new BackendStateKey("a@http://a", "gpt-4o"), new(Now.AddSeconds(2), BackendUnavailableReason.Throttled), Now);
        store.Mark(new BackendStateKey("b@http://b", "gpt-4o"), new(Now.AddSeconds(3), BackendUnavailableReason.Throttled), Now);

        store.GetEntries("a@http://a").Select(e => e.Key).Should().BeEquivalentTo(
            [new BackendStateKey("a@http://a"), new BackendStateKey("a@http://a", "gpt-4o")]);
    }
}
