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
    public void A_written_pin_is_taken_out_only_if_it_did_not_change_meanwhile()
    {
        var pins = new UnpublishedPins();
        pins.Keep("resp_1", "a", Now.AddDays(1), Now);
        var read = pins.Pending.Single();

        pins.Keep("resp_1", "a", Now.AddDays(2), Now);

        pins.TryComplete(read).Should().BeFalse("it was extended while it was written");
        pins.TryComplete(pins.Pending.Single()).Should().BeTrue();
        pins.Count.Should().Be(0);
    }

    [Fact]
    public void A_pin_deleted_while_it_was_written_is_not_completed_and_is_no_longer_held()
    {
        var pins = new UnpublishedPins();
        pins.Keep("resp_1", "a", Now.AddDays(1), Now);
        var read = pins.Pending.Single();

        pins.Forget("resp_1");

        (pins.TryComplete(read), pins.Contains("resp_1")).Should().Be((false, false), "the writer must remove what it wrote");
    }
}
