using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis.Tests;

public sealed class RedisStoreLayoutTests
{
    private readonly RedisStoreLayout _layout = new("app:pr:", "app:pr:events");

    [Fact]
    public void KeyOf_IsThePrefix_TheIdentityLength_AndTheIdentity()
    {
        ((string?)_layout.KeyOf(new BackendStateKey("ptu@https://ptu.example.com"))).Should().Be("app:pr:27:ptu@https://ptu.example.com");
    }

    [Fact]
    public void Affinity_keys_live_outside_the_prefix_and_soft_keys_apart_from_ids()
    {
        ((string?)_layout.AffinityKeyOf("resp_1")).Should().Be("affinity:app:pr:resp_1");
        ((string?)_layout.StickyKeyOf("resp_1")).Should().Be("affinity:app:pr:~resp_1");
        _layout.TryGetStateKey(_layout.AffinityKeyOf("resp_1"), out _).Should().BeFalse("the throttle state's load never reads a pin");
    }

    [Fact]
    public void KeyOf_AddsThePartitionAfterAMarker()
    {
        ((string?)_layout.KeyOf(new BackendStateKey("ptu@https://ptu.example.com", "gpt-4o"))).Should().Be("app:pr:27:ptu@https://ptu.example.com#gpt-4o");
    }

    [Fact]
    public void ScanPattern_MatchesEveryKeyUnderThePrefix()
    {
        ((string?)_layout.ScanPattern).Should().Be("app:pr:*");
    }

    [Theory]
    [InlineData("backend|1", null)]
    [InlineData("a#b", "c#d")]
    [InlineData("a", "")]
    [InlineData("12:x", "#")]
    [InlineData("primary@https://h:443/{x}", "dep|1:2")]
    public void TryGetStateKey_RoundTripsKeyOf_WhateverTheCharacters(string backend, string? partition)
    {
        var key = new BackendStateKey(backend, partition);

        _layout.TryGetStateKey(_layout.KeyOf(key), out var read).Should().BeTrue();

        read.Should().Be(key);
        read.Partition.Should().Be(string.IsNullOrEmpty(partition) ? null : partition, "an empty partition is the whole backend");
    }

    [Fact]
    public void KeysOfAnIdentityThatLooksLikeAPartition_AndOfAPartition_Differ()
    {
        var whole = _layout.KeyOf(new BackendStateKey("a#b"));
        var partition = _layout.KeyOf(new BackendStateKey("a", "b"));

        ((string?)whole).Should().Be("app:pr:3:a#b");
        ((string?)partition).Should().Be("app:pr:1:a#b");
    }

    [Theory]
    [InlineData("app:pr:")]
    [InlineData("other:pr:1:a")]
    [InlineData("app:p")]
    [InlineData("app:pr:backend")]
    [InlineData("app:pr:0:")]
    [InlineData("app:pr:01:a")]
    [InlineData("app:pr:-1:a")]
    [InlineData("app:pr:+1:a")]
    [InlineData("app:pr:5:abc")]
    [InlineData("app:pr:1:abc")]
    [InlineData("app:pr:1:a|b")]
    [InlineData("app:pr:99999:a")]
    [InlineData("app:pr::a")]
    public void TryGetStateKey_RejectsKeysThisLayoutDidNotWrite(string key)
    {
        _layout.TryGetStateKey(key, out _).Should().BeFalse();
    }

    [Fact]
    public void TryGetStateKey_RejectsAnOversizedKey_AndCanEncodeRejectsWhatWouldProduceIt()
    {
        var tooLong = new BackendStateKey(new string('b', StateKeyEncoding.MaxBackendLength + 1));
        var longestPartition = new BackendStateKey("b", new string('p', StateKeyEncoding.MaxPartitionLength));

        StateKeyEncoding.CanEncode(tooLong).Should().BeFalse();
        StateKeyEncoding.CanEncode(new BackendStateKey("b", new string('p', StateKeyEncoding.MaxPartitionLength + 1))).Should().BeFalse();
        StateKeyEncoding.CanEncode(longestPartition).Should().BeTrue();
        _layout.TryGetStateKey(_layout.KeyOf(tooLong), out _).Should().BeFalse();
        _layout.TryGetStateKey("app:pr:1:b#" + new string('p', StateKeyEncoding.MaxPartitionLength + 1), out _).Should().BeFalse();
        _layout.TryGetStateKey(_layout.KeyOf(longestPartition), out var read).Should().BeTrue();
        read.Should().Be(longestPartition);
    }

    [Fact]
    public void TryGetStateKey_RejectsANullKey()
    {
        _layout.TryGetStateKey(default(RedisKey), out _).Should().BeFalse();
    }
}
