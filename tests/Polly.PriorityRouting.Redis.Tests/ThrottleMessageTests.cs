namespace Polly.PriorityRouting.Redis.Tests;

public sealed class ThrottleMessageTests
{
    [Fact]
    public void Format_WritesVersionSenderRemainingReasonAndNameLast()
    {
        var message = new ThrottleMessage("abc", 1500, BackendUnavailableReason.Throttled, "https://east.example.net/");

        message.Format().Should().Be("1|abc|1500|1|https://east.example.net/");
    }

    [Fact]
    public void TryParse_RoundTrips_ANameThatContainsTheSeparator()
    {
        var message = new ThrottleMessage("abc", 42, BackendUnavailableReason.Timeout, "a|b|c");

        ThrottleMessage.TryParse(message.Format(), out var parsed).Should().BeTrue();

        parsed.Should().Be(message);
    }

    [Fact]
    public void TryParse_MapsAnUnknownReason_ToOther()
    {
        ThrottleMessage.TryParse("1|abc|42|99|backend", out var parsed).Should().BeTrue();

        parsed.Reason.Should().Be(BackendUnavailableReason.Other);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("2|abc|42|1|backend")]
    [InlineData("1|abc|-42|1|backend")]
    [InlineData("1|abc|4.2|1|backend")]
    [InlineData("1|abc|42|x|backend")]
    [InlineData("1|abc|42|1|")]
    [InlineData("1|abc|42|1")]
    public void TryParse_RejectsMalformedPayloads(string? payload)
    {
        ThrottleMessage.TryParse(payload, out _).Should().BeFalse();
    }

    [Theory]
    [InlineData("1", BackendUnavailableReason.Throttled)]
    [InlineData("4", BackendUnavailableReason.Timeout)]
    [InlineData("99", BackendUnavailableReason.Other)]
    [InlineData("throttled", BackendUnavailableReason.Other)]
    [InlineData(null, BackendUnavailableReason.Other)]
    public void ParseStoredReason_ReadsTheIntegerAndCountsAnythingElseAsOther(string? stored, BackendUnavailableReason expected)
    {
        ThrottleMessage.ParseStoredReason(stored).Should().Be(expected);
    }
}
