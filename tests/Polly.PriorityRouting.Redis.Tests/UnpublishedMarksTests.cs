namespace Polly.PriorityRouting.Redis.Tests;

public sealed class UnpublishedMarksTests
{
    private static readonly DateTimeOffset Now = new(2026, 1, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly BackendStateKey Key = new("b@https://b.example.net", "p");

    [Fact]
    public void Keep_ExtendsAKeptMark_AndNeverShortensIt()
    {
        var marks = new UnpublishedMarks(capacity: 2);

        marks.Keep(Key, new BackendUnavailability(Now.AddSeconds(10), BackendUnavailableReason.Throttled), Now);
        marks.Keep(Key, new BackendUnavailability(Now.AddSeconds(30), BackendUnavailableReason.Timeout), Now);
        marks.Keep(Key, new BackendUnavailability(Now.AddSeconds(20), BackendUnavailableReason.Throttled), Now);

        marks.TakeActive(Now).Should().Equal([KeyValuePair.Create(Key, new BackendUnavailability(Now.AddSeconds(30), BackendUnavailableReason.Timeout))]);
        marks.Count.Should().Be(0);
    }

    [Fact]
    public void Keep_IgnoresAnExpiredMark_AndAFullSetStillExtendsItsKeys()
    {
        var marks = new UnpublishedMarks(capacity: 1);

        marks.Keep(new BackendStateKey("expired"), new BackendUnavailability(Now, BackendUnavailableReason.Throttled), Now);
        marks.Keep(Key, new BackendUnavailability(Now.AddSeconds(10), BackendUnavailableReason.Throttled), Now);
        marks.Keep(new BackendStateKey("other"), new BackendUnavailability(Now.AddSeconds(10), BackendUnavailableReason.Throttled), Now);
        marks.Keep(Key, new BackendUnavailability(Now.AddSeconds(40), BackendUnavailableReason.Throttled), Now);

        marks.TakeActive(Now).Should().Equal([KeyValuePair.Create(Key, new BackendUnavailability(Now.AddSeconds(40), BackendUnavailableReason.Throttled))]);
    }

    [Fact]
    public void FullSet_MakesRoomForANewKey_OnceItsMarksExpired()
    {
        var marks = new UnpublishedMarks(capacity: 1);
        marks.Keep(Key, new BackendUnavailability(Now.AddSeconds(1), BackendUnavailableReason.Throttled), Now);

        var later = Now.AddSeconds(5);
        marks.Keep(new BackendStateKey("new"), new BackendUnavailability(later.AddSeconds(10), BackendUnavailableReason.Throttled), later);

        marks.TakeActive(later).Should().Equal([KeyValuePair.Create(new BackendStateKey("new"), new BackendUnavailability(later.AddSeconds(10), BackendUnavailableReason.Throttled))]);
    }

    [Fact]
    public void TakeActive_LeavesOutWhatExpiredSinceItWasKept()
    {
        var marks = new UnpublishedMarks();
        marks.Keep(Key, new BackendUnavailability(Now.AddSeconds(1), BackendUnavailableReason.Throttled), Now);

        marks.TakeActive(Now.AddSeconds(2)).Should().BeEmpty();
        marks.Count.Should().Be(0);
    }
}
