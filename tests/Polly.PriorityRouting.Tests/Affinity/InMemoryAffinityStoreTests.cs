using Microsoft.Extensions.Time.Testing;

namespace Polly.PriorityRouting.Tests.Affinity;

public class InMemoryAffinityStoreTests
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 24, 12, 0, 0, TimeSpan.Zero));

    [Fact]
    public async Task A_pin_is_found_until_it_expires()
    {
        var store = new InMemoryAffinityStore(10, _time);
        await store.PinAsync("resp_1", "a@http://a", TimeSpan.FromMinutes(5), CancellationToken.None);

        (await store.FindAsync("resp_1", CancellationToken.None)).Should().Be("a@http://a");
        _time.Advance(TimeSpan.FromMinutes(5) - TimeSpan.FromTicks(1));
        (await store.FindAsync("resp_1", CancellationToken.None)).Should().Be("a@http://a");
        _time.Advance(TimeSpan.FromTicks(1));
        (await store.FindAsync("resp_1", CancellationToken.None)).Should().BeNull();
    }

    [Fact]
    public async Task A_removed_id_is_forgotten()
    {
        var store = new InMemoryAffinityStore(10, _time);
        store.Pin("file-1", "a@http://a", TimeSpan.FromDays(1));

        await store.RemoveAsync("file-1", CancellationToken.None);

        (await store.FindAsync("file-1", CancellationToken.None)).Should().BeNull();
        store.Count.Should().Be(0);
    }

    [Fact]
    public void A_full_store_sweeps_expired_pins_first()
    {
        var store = new InMemoryAffinityStore(3, _time);
        store.Pin("resp_old", "a", TimeSpan.FromMinutes(1));
        store.Pin("resp_2", "a", TimeSpan.FromDays(1));
        store.Pin("resp_3", "a", TimeSpan.FromDays(1));
        _time.Advance(TimeSpan.FromMinutes(2));

        store.Pin("resp_4", "b", TimeSpan.FromDays(1));

        store.Count.Should().Be(3);
        (store.TryFind("resp_2", out _), store.TryFind("resp_3", out _), store.TryFind("resp_4", out _)).Should().Be((true, true, true));
    }

    [Fact]
    public void A_store_full_of_live_pins_evicts_those_closest_to_expiry_and_never_grows_past_its_capacity()
    {
        var store = new InMemoryAffinityStore(100, _time);
        for (var i = 0; i < 1_000; i++)
        {
            store.Pin($"resp_{i}", "a", TimeSpan.FromDays(1) + TimeSpan.FromSeconds(i));
            store.Count.Should().BeLessThanOrEqualTo(100);
        }

        store.TryFind("resp_999", out _).Should().BeTrue("a new pin is always kept");
        store.TryFind("resp_0", out _).Should().BeFalse("the pin closest to expiry went first");
    }

    [Fact]
    public void Re_pinning_a_held_id_in_a_full_store_evicts_nothing()
    {
        var store = new InMemoryAffinityStore(2, _time);
        store.Pin("resp_1", "a", TimeSpan.FromDays(1));
        store.Pin("resp_2", "a", TimeSpan.FromDays(2));

        store.Pin("resp_1", "a", TimeSpan.FromDays(3));

        (store.Count, store.TryFind("resp_2", out _)).Should().Be((2, true));
    }

    [Fact]
    public async Task Two_hundred_thousand_distinct_soft_keys_leave_every_id_pin_in_place_and_stay_within_their_own_capacity()
    {
        var store = new InMemoryAffinityStore();
        for (var i = 0; i < 1_000; i++)
        {
            store.Pin($"resp_{i}", "a", TimeSpan.FromMinutes(1) + TimeSpan.FromSeconds(i));
        }

        // Soft keys that outlive every id pin: were they in one space, the ids would be the first evicted.
        for (var i = 0; i < 200_000; i++)
        {
            await store.PinStickyAsync($"user-{i}", "b", TimeSpan.FromDays(1), CancellationToken.None);
        }

        Enumerable.Range(0, 1_000).Count(i => store.TryFind($"resp_{i}", out _)).Should().Be(1_000);
        // 50,000 fill the space; each further 5,000 evict the tenth idle longest and fill it again.
        (store.Count, store.StickyCount).Should().Be((1_000, InMemoryAffinityStore.DefaultStickyCapacity));
        (await store.FindStickyAsync("user-199999", CancellationToken.None)).Should().Be("b", "a new soft key is always kept");
        (await store.FindStickyAsync("user-0", CancellationToken.None)).Should().BeNull("the soft keys idle longest went first");
    }

    [Fact]
    public async Task An_id_and_a_soft_key_with_the_same_text_are_kept_apart()
    {
        var store = new InMemoryAffinityStore(10, _time);
        store.Pin("resp_1", "a", TimeSpan.FromDays(1));

        await store.PinStickyAsync("resp_1", "b", TimeSpan.FromMinutes(10), CancellationToken.None);

        (store.TryFind("resp_1", out var holder), holder).Should().Be((true, "a"));
        (await store.FindStickyAsync("resp_1", CancellationToken.None)).Should().Be("b");
    }
}
