namespace Polly.PriorityRouting.Tests.Affinity;

public class AffinityIdKindTests
{
    [Fact]
    public void A_kind_without_a_lifetime_of_its_own_is_pinned_for_the_resource_lifetime_and_built_in_responses_for_the_response_lifetime()
    {
        var options = new AffinityOptions { ResourceLifetime = TimeSpan.FromDays(2), ResponseLifetime = TimeSpan.FromDays(3) };

        (new AffinityIdKind("session").LifetimeUnder(options), new AffinityIdKind("ticket", TimeSpan.FromMinutes(5)).LifetimeUnder(options))
            .Should().Be((TimeSpan.FromDays(2), TimeSpan.FromMinutes(5)));
        (OpenAIAffinityKinds.Response.LifetimeUnder(options), OpenAIAffinityKinds.ReasoningItem.LifetimeUnder(options), OpenAIAffinityKinds.File.LifetimeUnder(options))
            .Should().Be((TimeSpan.FromDays(3), TimeSpan.FromDays(3), TimeSpan.FromDays(2)));
    }

    [Theory]
    [InlineData("", 1)]
    [InlineData(" ", 1)]
    [InlineData("session", 0)]
    [InlineData("session", -1)]
    public void A_kind_needs_words_and_a_positive_lifetime(string description, int lifetimeSeconds)
    {
        var create = () => new AffinityIdKind(description, TimeSpan.FromSeconds(lifetimeSeconds));

        create.Should().Throw<ArgumentException>();
    }

    [Fact]
    public void An_id_reads_as_its_kind_and_value()
    {
        (new AffinityId("sess-1", new AffinityIdKind("session")).ToString(), default(AffinityId).ToString(), default(AffinityId).IsEmpty)
            .Should().Be(("session 'sess-1'", string.Empty, true));
    }
}
