namespace Polly.PriorityRouting.Redis.Tests;

public sealed class RedisStoreLayoutTests
{
    private readonly RedisStoreLayout _layout = new("app:pr:", "app:pr:events");

    [Fact]
    public void KeyOf_IsThePrefixFollowedByTheBackendName()
    {
        ((string?)_layout.KeyOf("https://east.example.net/openai")).Should().Be("app:pr:https://east.example.net/openai");
    }

    [Fact]
    public void ScanPattern_MatchesEveryKeyUnderThePrefix()
    {
        ((string?)_layout.ScanPattern).Should().Be("app:pr:*");
    }

    [Fact]
    public void TryGetBackendName_RoundTripsKeyOf()
    {
        _layout.TryGetBackendName(_layout.KeyOf("backend|1"), out var backendName).Should().BeTrue();

        backendName.Should().Be("backend|1");
    }

    [Theory]
    [InlineData("app:pr:")]
    [InlineData("other:pr:backend")]
    [InlineData("app:p")]
    public void TryGetBackendName_RejectsKeysThatNameNoBackendOfThisPrefix(string key)
    {
        _layout.TryGetBackendName(key, out _).Should().BeFalse();
    }
}
