using System.Net;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Affinity;

/// <summary>Per-request hints on <see cref="HttpRequestMessage.Options"/>, over a(1), b(1), c(2).</summary>
public class RoutingHintsTests
{
    private static RoutingHarness Harness() => new(o =>
    {
        o.Randomizer = _ => 0; // first candidate of the tier
        o.Affinity.Store = new InMemoryAffinityStore();
    });

    [Fact]
    public async Task Only_these_backends()
    {
        using var h = Harness();

        using var response = await h.Client.SendAsync(Request(new PriorityRoutingHints { OnlyBackends = ["c"] }));

        h.Transport.Hosts.Should().Equal(["c"]);
    }

    [Fact]
    public async Task Never_these_backends()
    {
        using var h = Harness();

        using var response = await h.Client.SendAsync(Request(new PriorityRoutingHints { ExcludedBackends = ["a"] }));

        h.Transport.Hosts.Should().Equal(["b"]);
    }

    [Fact]
    public async Task At_most_this_priority_and_the_exhausted_answer_is_computed_over_the_allowed_backends_only()
    {
        using var h = Harness();
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "7"));
        h.Transport.Respond("b", HttpStatusCode.TooManyRequests, ("Retry-After", "9"));

        using var response = await h.Client.SendAsync(Request(new PriorityRoutingHints { MaxPriority = 1 }));

        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(7), "c (available now) was not allowed");
        h.Transport.Hosts.Should().Equal(["a", "b"]);
    }

    [Fact]
    public async Task No_failover_answers_with_the_one_backends_own_retry_after()
    {
        using var h = Harness();
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "7"));

        using var response = await h.Client.SendAsync(Request(new PriorityRoutingHints { NoFailover = true }));

        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(7));
        h.Transport.Hosts.Should().Equal(["a"]);
    }

    [Fact]
    public async Task No_failover_still_picks_the_best_available_backend()
    {
        using var h = Harness();
        await h.Store.MarkUnavailableAsync(
            RoutingHarness.Key("a"),
            new BackendUnavailability(h.Time.GetUtcNow() + TimeSpan.FromSeconds(5), BackendUnavailableReason.Throttled),
            h.Time.GetUtcNow(),
            CancellationToken.None);

        using var response = await h.Client.SendAsync(Request(new PriorityRoutingHints { NoFailover = true }));

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal(["b"]);
    }

    [Fact]
    public async Task Hints_that_exclude_the_backend_holding_an_id_leave_nothing()
    {
        using var h = Harness();
        ((InMemoryAffinityStore)h.Options.Affinity.Store!).Pin("resp_1", "a@http://a", TimeSpan.FromDays(1));

        using var response = await h.Client.SendAsync(Request(
            new PriorityRoutingHints { ExcludedBackends = ["a"] },
            "/v1/responses/resp_1"));

        response.StatusCode.Should().Be(HttpStatusCode.ServiceUnavailable);
        h.Transport.Requests.Should().BeEmpty();
    }

    private static HttpRequestMessage Request(PriorityRoutingHints hints, string path = "/v1/chat/completions")
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Options.Set(PriorityRoutingRequestOptions.Hints, hints);
        return request;
    }
}
