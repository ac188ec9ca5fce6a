using System.Globalization;
using System.Net;
using System.Text;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Budgets;

/// <summary>
/// <see cref="PriorityBackend.TokensPerMinute"/> and <see cref="PriorityBackend.RequestsPerMinute"/> through the strategy
/// on a fake clock: a backend that reports no budget is admitted on the one it declares.
/// </summary>
public class DeclaredQuotaTests
{
    [Fact]
    public async Task A_request_that_does_not_fit_the_declared_tokens_goes_to_the_next_backend_and_the_quota_refills_a_minute_later()
    {
        using var h = Harness(Declared("a", 1, tokensPerMinute: 1000), RoutingHarness.Backend("b", 2));

        (await h.Client.PostAsync("/", Chat(600))).Dispose();
        (await h.Client.PostAsync("/", Chat(600))).Dispose();
        h.Time.Advance(TimeSpan.FromSeconds(59));
        (await h.Client.PostAsync("/", Chat(600))).Dispose();
        h.Time.Advance(TimeSpan.FromSeconds(1));
        (await h.Client.PostAsync("/", Chat(600))).Dispose();

        h.Transport.Hosts.Should().Equal(["a", "b", "b", "a"], "the quota refills a minute after its first use");
    }

    [Fact]
    public async Task When_nothing_fits_the_declared_quota_the_exhausted_429_promises_the_refill()
    {
        using var h = Harness(Declared("a", 1, tokensPerMinute: 1000));

        (await h.Client.PostAsync("/", Chat(600))).Dispose();
        h.Time.Advance(TimeSpan.FromSeconds(10));
        using var exhausted = await h.Client.PostAsync("/", Chat(600));

        exhausted.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        exhausted.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(50));
        h.Transport.CountFor("a").Should().Be(1, "the request that did not fit was never sent");
    }

    [Fact]
    public async Task A_budget_the_backend_reports_replaces_its_declared_quota()
    {
        using var h = Harness(Declared("a", 1, tokensPerMinute: 1000), RoutingHarness.Backend("b", 2));
        h.Transport.Respond("a", _ => Budget(remaining: 100_000, limit: 100_000, reset: "60s"));

        for (var i = 0; i < 3; i++)
        {
            (await h.Client.PostAsync("/", Chat(600))).Dispose();
        }

        h.Transport.Hosts.Should().Equal(["a", "a", "a"], "the reported 100,000 tokens take precedence over the declared 1,000");
    }

    [Fact]
    public async Task A_reported_budget_smaller_than_the_declared_quota_holds_requests_back()
    {
        using var h = Harness(Declared("a", 1, tokensPerMinute: 1_000_000), RoutingHarness.Backend("b", 2));
        h.Transport.Respond("a", _ => Budget(remaining: 100, limit: 10_000, reset: "60s"));

        (await h.Client.PostAsync("/", Chat(600))).Dispose();
        (await h.Client.PostAsync("/", Chat(600))).Dispose();

        h.Transport.Hosts.Should().Equal("a", "b");
    }

    [Fact]
    public async Task The_declared_requests_per_minute_admit_that_many_requests_a_minute()
    {
        using var h = Harness(Declared("a", 1, requestsPerMinute: 2), RoutingHarness.Backend("b", 2));

        for (var i = 0; i < 3; i++)
        {
            (await h.Client.GetAsync("/")).Dispose();
        }

        h.Time.Advance(TimeSpan.FromMinutes(1));
        (await h.Client.GetAsync("/")).Dispose();

        h.Transport.Hosts.Should().Equal("a", "a", "b", "a");
    }

    [Fact]
    public async Task A_backend_without_a_declared_quota_is_not_held_back()
    {
        using var h = Harness(RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2));

        for (var i = 0; i < 3; i++)
        {
            (await h.Client.PostAsync("/", Chat(600))).Dispose();
        }

        h.Transport.Hosts.Should().Equal("a", "a", "a");
    }

    private static PriorityBackend Declared(string name, int priority, int? tokensPerMinute = null, int? requestsPerMinute = null)
    {
        var backend = RoutingHarness.Backend(name, priority);
        backend.TokensPerMinute = tokensPerMinute;
        backend.RequestsPerMinute = requestsPerMinute;
        return backend;
    }

    private static RoutingHarness Harness(params PriorityBackend[] backends) => new(o => o.Randomizer = _ => 0, backends);

    // Estimated at (bytes / 4) + max_tokens: about 765 tokens for 600.
    private static StringContent Chat(int maxTokens)
        => new("{\"messages\":[{\"role\":\"user\",\"content\":\"" + new string('x', maxTokens) + "\"}],\"max_tokens\":" + maxTokens.ToString(CultureInfo.InvariantCulture) + "}", Encoding.UTF8, "application/json");

    private static HttpResponseMessage Budget(long remaining, long limit, string reset)
    {
        var response = new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent("{}") };
        response.Headers.TryAddWithoutValidation("x-ratelimit-remaining-tokens", remaining.ToString(CultureInfo.InvariantCulture));
        response.Headers.TryAddWithoutValidation("x-ratelimit-limit-tokens", limit.ToString(CultureInfo.InvariantCulture));
        response.Headers.TryAddWithoutValidation("x-ratelimit-reset-tokens", reset);
        return response;
    }
}
