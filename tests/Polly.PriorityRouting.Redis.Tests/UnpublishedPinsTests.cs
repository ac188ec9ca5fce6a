namespace Polly.PriorityRouting.Redis.Tests;

public sealed class UnpublishedPinsTests
{
    private static readonly DateTimeOffset Now = new(2026, 1, 1, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void A_full_set_keeps_what_it_holds_and_does_not_keep_a_new_pin()
    {
        var pins = new UnpublishedPins(capacity: 2);

        pins.Keep("resp_1", "a", Now.AddDays(30), Now);
        pins.Keep("resp_2", "a", Now.AddDays(30), Now);
        pins.Keep("resp_3", "b", Now.AddDays(30), Now);

        pins.Pending.Select(p => p.Key).Should().BeEquivalentTo(["resp_1", "resp_2"]);
        pins.Count.Should().Be(2);
    }

    [Fact]
    public void A_full_set_makes_room_once_its_pins_expired_and_never_keeps_an_expired_one()
    {
        var pins = new UnpublishedPins(capacity: 1);
        pins.Keep("resp_expired", "a", Now, Now);
        pins.Keep("resp_1", "a", Now.AddSeconds(1), Now);

        var later = Now.AddSeconds(5);
        pins.Keep("file-2", "b", later.AddDays(365), later);

        pins.Pending.Should().Equal([KeyValuePair.Create("file-2", new UnpublishedPin("b", later.AddDays(365)))]);
    }

    [Fact]
    public void A_forgotten_id_is_never_published()
    {
        var pins = new UnpublishedPins();
        pins.Keep("resp_1", "a", Now.AddDays(30), Now);

        pins.Forget("resp_1");

        pins.Pending.Should().BeEmpty();
        pins.Count.Should().Be(0);
    }

    [Fact]
    public async Task Publishing_writes_each_pin_with_the_lifetime_it_has_left_and_empties_the_set()
    {
        var pins = new UnpublishedPins();
        pins.Keep("resp_1", "a", Now.AddDays(30), Now);
        pins.Keep("file-2", "b", Now.AddSeconds(90), Now);
        var written = new List<(string, string, TimeSpan)>();

        var published = await pins.PublishAsync(
            (id, backend, timeToLive) => Record(written, (id, backend, timeToLive)),
            _ => throw new InvalidOperationException("nothing was deleted"),
            () => Now.AddSeconds(30));

        published.Should().Be(2);
        written.Should().BeEquivalentTo([("resp_1", "a", TimeSpan.FromDays(30) - TimeSpan.FromSeconds(30)), ("file-2", "b", TimeSpan.FromMinutes(1))]);
        pins.Count.Should().Be(0);
    }

    [Fact]
    public async Task A_pin_deleted_while_it_is_written_is_removed_again()
    {
        var pins = new UnpublishedPins();
        pins.Keep("resp_1", "a", Now.AddDays(30), Now);
        var removed = new List<string>();

        // The DELETE arrives while the pin's SET is on its way: whichever reaches Redis first, the pin must not stay.
        var published = await pins.PublishAsync(
            (id, _, _) =>
            {
                pins.Forget(id);
                return Task.CompletedTask;
            },
            id => Record(removed, id),
            () => Now);

        (published, pins.Count).Should().Be((0, 0));
        removed.Should().Equal("resp_1");
    }

    [Fact]
    public async Task A_failed_write_leaves_the_pins_not_yet_written_for_the_next_attempt()
    {
        var pins = new UnpublishedPins();
        pins.Keep("resp_1", "a", Now.AddDays(30), Now);

        var act = () => pins.PublishAsync((_, _, _) => throw new TimeoutException("Redis timed out"), _ => Task.CompletedTask, () => Now);

        await act.Should().ThrowAsync<TimeoutException>();
        pins.Pending.Should().Equal([KeyValuePair.Create("resp_1", new UnpublishedPin("a", Now.AddDays(30)))]);
    }

    [Fact]
    public async Task A_pin_that_expired_while_it_waited_is_dropped_unwritten()
    {
        var pins = new UnpublishedPins();
        pins.Keep("resp_1", "a", Now.AddMinutes(1), Now);

        var published = await pins.PublishAsync((_, _, _) => throw new InvalidOperationException("expired"), _ => Task.CompletedTask, () => Now.AddMinutes(1));

        (published, pins.Count).Should().Be((0, 0));
    }

    private static Task Record<T>(List<T> list, T item)
    {
        list.Add(item);
        return Task.CompletedTask;
    }
}
