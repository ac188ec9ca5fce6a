namespace Polly.PriorityRouting.Redis.Tests;

public sealed class BudgetMessageTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);
    private static readonly BackendStateKey Key = new("ptu@https://east.example.net", "gpt-4o");

    [Fact]
    public void Format_WritesTheCountsResetsInMillisecondsLeftAndTheEncodedKeyLast()
    {
        var observation = new BackendBudgetObservation(1200, 100_000, Now.AddSeconds(9.5), null, null, default);

        var message = BudgetMessage.From("abc", Key, observation, Now, maxMilliseconds: 300_000);

        message.Format().Should().Be("b1|abc|1200|100000|9500|||0|28:ptu@https://east.example.net#gpt-4o");
    }

    [Fact]
    public void A_reader_sets_the_resets_on_its_own_clock_bounded()
    {
        BudgetMessage.TryParse("b1|abc|1200|100000|9500|3|10|999999999|7:backend", out var message).Should().BeTrue();

        var readerNow = Now.AddHours(1);
        message.ToObservation(readerNow, maxMilliseconds: 300_000).Should().Be(
            new BackendBudgetObservation(1200, 100_000, readerNow.AddMilliseconds(9500), 3, 10, readerNow.AddMinutes(5)));
    }

    [Theory]
    [InlineData("a|b|c", null)]
    [InlineData("a|b", "c|d")]
    [InlineData("x", "")]
    public void TryParse_RoundTrips_KeysThatContainTheSeparators(string backend, string? partition)
    {
        var message = new BudgetMessage("abc", 5, null, 10, null, 7, 0, new BackendStateKey(backend, partition));

        BudgetMessage.TryParse(message.Format(), out var parsed).Should().BeTrue();

        parsed.Should().Be(message);
    }

    [Theory]
    [InlineData("")]
    [InlineData("b1")]
    [InlineData("b2|abc|1|2|3|4|5|6|7:backend")]
    [InlineData("b1||1|2|3|4|5|6|7:backend")]
    [InlineData("b1|abc|-1|2|3|4|5|6|7:backend")]
    [InlineData("b1|abc|1|2|x|4|5|6|7:backend")]
    [InlineData("b1|abc|1|2||4|5|6|7:backend")]
    [InlineData("b1|abc|||3|||6|7:backend")]
    [InlineData("b1|abc|1|2|3|4|5|6|8:backend")]
    [InlineData("b1|abc|99999999999999999999|2|3|4|5|6|7:backend")]
    [InlineData("2|abc|1500|1|7:backend")]
    public void TryParse_RejectsAnythingAWriterWouldNotHaveWritten(string payload)
    {
        BudgetMessage.TryParse(payload, out _).Should().BeFalse();
    }

    [Fact]
    public void TryParse_RejectsAPayloadOverTheBound_And_a_throttle_reader_ignores_budget_messages()
    {
        var huge = "b1|abc|1|2|3|4|5|6|" + new string('x', ThrottleMessage.MaxLength);

        BudgetMessage.TryParse(huge, out _).Should().BeFalse();
        ThrottleMessage.TryParse("b1|abc|1200|100000|9500|||0|7:backend", out _).Should().BeFalse();
        BudgetMessage.IsBudgetMessage("2|abc|1500|1|7:backend").Should().BeFalse();
    }
}
