using System.Net;
using System.Text;
using Microsoft.Extensions.Time.Testing;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Affinity;

/// <summary>
/// The affinity store a pipeline uses when it configures none: shared by the pipelines on one clock, and expiring on
/// that clock, so that a pipeline on a fake clock (a test's) neither keeps pins past their lifetime nor sees another
/// clock's pins.
/// </summary>
public class DefaultAffinityStoreTests
{
    [Fact]
    public async Task A_user_stops_steering_its_requests_once_the_sticky_lifetime_has_passed_on_the_pipeline_s_clock()
    {
        var draw = 0;
        using var h = Harness(() => draw);
        (await SendAsync(h, "user-expiry")).Should().Be(HttpStatusCode.OK);
        draw = 1;

        h.Time.Advance(AffinityOptions.DefaultStickyLifetime - TimeSpan.FromSeconds(1));
        (await SendAsync(h, "user-expiry")).Should().Be(HttpStatusCode.OK);
        h.Time.Advance(AffinityOptions.DefaultStickyLifetime + TimeSpan.FromSeconds(1));
        (await SendAsync(h, "user-expiry")).Should().Be(HttpStatusCode.OK);

        // Kept while the key is younger than its lifetime (sliding from its last success), then routed normally: to b.
        h.Transport.Hosts.Should().Equal(["a", "a", "b"]);
    }

    [Fact]
    public async Task Pipelines_on_separate_clocks_do_not_see_each_other_s_users()
    {
        using var first = Harness(() => 0);
        (await SendAsync(first, "user-1")).Should().Be(HttpStatusCode.OK);

        // Another test of the same process, on a clock of its own: its routing must not depend on what ran before it.
        using var second = Harness(() => 1);
        (await SendAsync(second, "user-1")).Should().Be(HttpStatusCode.OK);

        first.Transport.Hosts.Should().Equal(["a"]);
        second.Transport.Hosts.Should().Equal(["b"]);
    }

    [Fact]
    public async Task Pipelines_on_one_clock_share_their_users_as_every_client_of_a_process_does()
    {
        using var first = Harness(() => 0);
        (await SendAsync(first, "user-1")).Should().Be(HttpStatusCode.OK);

        using var second = Harness(() => 1, first.Time);
        (await SendAsync(second, "user-1")).Should().Be(HttpStatusCode.OK);

        second.Transport.Hosts.Should().Equal(["a"]);
    }

    private static async Task<HttpStatusCode> SendAsync(RoutingHarness h, string user)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21")
        {
            Content = new StringContent($$"""{"messages":[],"user":"{{user}}"}""", Encoding.UTF8, "application/json"),
        };
        using var response = await h.Client.SendAsync(request);
        return response.StatusCode;
    }

    /// <summary>Two equal backends a, b with no affinity store configured; a weighted pick draws what <paramref name="draw"/> says.</summary>
    private static RoutingHarness Harness(Func<int> draw, FakeTimeProvider? time = null) => new(
        o => o.Randomizer = bound => draw() % bound,
        null,
        time,
        RoutingHarness.Backend("a", 1),
        RoutingHarness.Backend("b", 1));
}
