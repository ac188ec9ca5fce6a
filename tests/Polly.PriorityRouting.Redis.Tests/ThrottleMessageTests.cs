namespace Polly.PriorityRouting.Redis.Tests;

public sealed class ThrottleMessageTests
{
    [Fact]
    public void Format_WritesVersionSenderRemainingReasonAndTheEncodedKeyLast()
    {
        var message = new ThrottleMessage("abc", 1500, BackendUnavailableReason.Throttled, new BackendStateKey("ptu@https://east.example.net", "gpt-4o"));

        message.Format().Should().Be("2|abc|1500|1|28:ptu@https://east.example.net#gpt-4o");
    }

    [Fact]
    public void Format_OfAWholeBackend_HasNoPartitionMarker()
    {
        var message = new ThrottleMessage("abc", 1500, BackendUnavailableReason.Throttled, new BackendStateKey("https://east.example.net"));

        message.Format().Should().Be("2|abc|1500|1|24:https://east.example.net");
    }

    [Theory]
    [InlineData("a|b|c", null)]
    [InlineData("a|b", "c|d")]
    [InlineData("a#b", "#")]
    [InlineData("x", "")]
    public void TryParse_RoundTrips_IdentitiesAndPartitionsThatContainTheSeparators(string backend, string? partition)
    {
        var message = new ThrottleMessage("abc", 42, BackendUnavailableReason.Timeout, new BackendStateKey(backend, partition));

        ThrottleMessage.TryParse(message.Format(), out var parsed).Should().BeTrue();

        parsed.Should().Be(message);
        parsed.Key.Partition.Should().Be(string.IsNullOrEmpty(partition) ? null : partition, "an empty partition is the whole backend");
    }

    [Fact]
    public void TryParse_MapsAnUnknownReason_ToOther()
    {
        ThrottleMessage.TryParse("2|abc|42|99|7:backend", out var parsed).Should().BeTrue();

        parsed.Reason.Should().Be(BackendUnavailableReason.Other);
    }

    [Theory]
    [InlineData("")]
    [InlineData("1|abc|42|1|backend")]
    [InlineData("3|abc|42|1|7:backend")]
    [InlineData("2||42|1|7:backend")]
    [InlineData("2|abc|-42|1|7:backend")]
    [InlineData("2|abc|4.2|1|7:backend")]
    [InlineData("2|abc|99999999999999999999|1|7:backend")]
    [InlineData("2|abc|42|x|7:backend")]
    [InlineData("2|abc|42|1|")]
    [InlineData("2|abc|42|1|backend")]
    [InlineData("2|abc|42|1|8:backend")]
    [InlineData("2|abc|42|1|6:backend")]
    [InlineData("2|abc|42|1|0:")]
    [InlineData("2|abc|42|1")]
    [InlineData("\0\0\0\0")]
    public void TryParse_RejectsMalformedPayloads(string payload)
    {
        ThrottleMessage.TryParse(payload, out _).Should().BeFalse();
    }

    [Fact]
    public void TryParse_RejectsAnOversizedPayload_UnreadAndASenderOver64Characters()
    {
        var oversized = "2|abc|42|1|1:b#" + new string('p', ThrottleMessage.MaxLength);
        var longSender = "2|" + new string('s', 65) + "|42|1|1:b";

        ThrottleMessage.TryParse(oversized, out _).Should().BeFalse();
        ThrottleMessage.TryParse(longSender, out _).Should().BeFalse();
        ThrottleMessage.TryParse("2|" + new string('s', 64) + "|42|1|1:b", out _).Should().BeTrue();
    }

    [Fact]
    public void TryParse_NeverThrows_OnRandomPayloads()
    {
        var random = new Random(7);
        const string Alphabet = "0123456789|:#-ab\0";
        for (var i = 0; i < 20_000; i++)
        {
            var payload = new string([.. Enumerable.Range(0, random.Next(0, 40)).Select(_ => Alphabet[random.Next(Alphabet.Length)])]);

            var parse = () => ThrottleMessage.TryParse(payload, out _);

            parse.Should().NotThrow(payload);
        }
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
