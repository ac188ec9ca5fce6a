using System.Globalization;
using System.Net;
using System.Text;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Budgets;

/// <summary>Admission by token budget and the spread exhausted answer, through the strategy on a fake clock.</summary>
public class TokenBudgetAdmissionTests
{
    [Fact]
    public async Task A_request_larger_than_a_backends_remaining_tokens_goes_to_the_next_backend_without_a_429()
    {
        using var h = Harness(o => { }, RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 1), RoutingHarness.Backend("c", 2));
        h.Transport.Respond("a", OkWithBudget(1000, "60s"));
        h.Transport.Respond("b", OkWithBudget(500, "60s"));

        (await h.Client.PostAsync("/", Chat(100))).Dispose();
        (await h.Client.PostAsync("/", Chat(100))).Dispose();
        h.Transport.Hosts.Should().Equal("a", "a");

        using var large = await h.Client.PostAsync("/", Chat(6000));
        large.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("a", "a", "b");

        (await h.Client.PostAsync("/", Chat(6000))).Dispose();
        h.Transport.Hosts.Should().Equal(["a", "a", "b", "c"], "the same tier first, then the lower tier");
    }

    [Fact]
    public async Task A_request_that_costs_nothing_is_admitted_by_a_backend_whose_budget_is_spent()
    {
        using var h = Harness(o => { }, RoutingHarness.Backend("a", 1));
        var chatCost = OpenAIRequestCost.Estimate(Encoding.UTF8.GetBytes(await Chat(100).ReadAsStringAsync()));
        var answered = 0;
        h.Transport.Respond("a", _ => Interlocked.Increment(ref answered) == 1
            ? Budget(HttpStatusCode.OK, remaining: chatCost, limit: 10_000, reset: "60s")
            : new HttpResponseMessage(HttpStatusCode.OK));
        (await h.Client.GetAsync("/")).Dispose();
        (await h.Client.PostAsync("/", Chat(100))).Dispose();

        using var get = await h.Client.GetAsync("/");
        using var text = await h.Client.PostAsync("/", new StringContent("not json", Encoding.UTF8, "text/plain"));
        using var chat = await h.Client.PostAsync("/", Chat(100));

        get.StatusCode.Should().Be(HttpStatusCode.OK, "a request that costs 0 is admitted as if no budget were known");
        text.StatusCode.Should().Be(HttpStatusCode.OK);
        chat.StatusCode.Should().Be(HttpStatusCode.TooManyRequests, "the chat spent the budget the first answer reported");
        h.Transport.CountFor("a").Should().Be(4);
    }

    [Fact]
    public async Task With_budgets_off_the_request_goes_where_it_went_before()
    {
        using var h = Harness(o => o.TokenBudgets = false);
        h.Transport.Respond("a", OkWithBudget(1000, "60s"));

        (await h.Client.PostAsync("/", Chat(100))).Dispose();
        (await h.Client.PostAsync("/", Chat(6000))).Dispose();

        h.Transport.Hosts.Should().Equal("a", "a");
    }

    [Fact]
    public async Task A_custom_cost_hook_is_used_and_a_failing_one_costs_nothing()
    {
        var cost = 5000L;
        using var h = Harness(o => o.RequestCost = _ => cost > 0 ? cost : throw new InvalidOperationException("no estimate"), RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2));
        h.Transport.Respond("a", OkWithBudget(1000, "60s"));

        (await h.Client.GetAsync("/")).Dispose();
        (await h.Client.GetAsync("/")).Dispose();
        cost = -1;
        (await h.Client.GetAsync("/")).Dispose();

        h.Transport.Hosts.Should().Equal("a", "b", "a");
    }

    [Fact]
    public async Task The_budget_comes_back_at_its_reset()
    {
        using var h = Harness(o => { }, RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2));
        h.Transport.Respond("a", OkWithBudget(1000, "10s"));

        (await h.Client.PostAsync("/", Chat(100))).Dispose();
        (await h.Client.PostAsync("/", Chat(6000))).Dispose();
        h.Time.Advance(TimeSpan.FromSeconds(10));
        (await h.Client.PostAsync("/", Chat(6000))).Dispose();

        h.Transport.Hosts.Should().Equal("a", "b", "a");
    }

    [Fact]
    public async Task A_budget_reported_by_a_long_completion_refills_at_its_reset_counted_from_the_send()
    {
        using var h = Harness(o => { }, RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2));

        // The backend decides (and reports) its budget when it admits the request; the answer arrives 4 s later.
        h.Transport.Respond("a", _ =>
        {
            h.Time.Advance(TimeSpan.FromSeconds(4));
            return Budget(HttpStatusCode.OK, remaining: 1000, limit: 10_000, reset: "10s");
        });

        (await h.Client.PostAsync("/", Chat(100))).Dispose();
        (await h.Client.PostAsync("/", Chat(6000))).Dispose();
        h.Transport.Hosts.Should().Equal(["a", "b"], "1,000 tokens are left until 10 s after the send");

        // 10 s after the first send (6 s after its answer arrived) the budget is refilled.
        h.Time.Advance(TimeSpan.FromSeconds(6));
        (await h.Client.PostAsync("/", Chat(6000))).Dispose();

        h.Transport.Hosts.Should().Equal(["a", "b", "a"], "the reset is counted from when the backend admitted the request, not from the answer's arrival");
    }

    [Fact]
    public async Task Exhausted_callers_are_spread_over_the_refills_instead_of_one_instant()
    {
        using var h = Harness(o => { }, RoutingHarness.Backend("a", 1));
        h.Transport.Respond("a", _ => Budget(HttpStatusCode.OK, remaining: 0, limit: 10_000, reset: "10s"));

        (await h.Client.PostAsync("/", Chat(100))).Dispose();
        var advertised = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            using var exhausted = await h.Client.PostAsync("/", Chat(3000));
            exhausted.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
            advertised.Add(exhausted.Headers.GetValues("retry-after-ms").Single());
        }

        // The prompt "user" + 3000 bytes is 751 tokens, + 3,000 output: 3,751 each; two fit 10,000 tokens, per 10 s.
        // Two windows are promised at most; the fifth caller gets the soonest moment and reserves nothing.
        advertised.Should().Equal("10002", "10002", "20002", "20002", "10002");
        h.Transport.CountFor("a").Should().Be(1);
    }

    [Fact]
    public async Task Without_budgets_every_exhausted_caller_is_told_the_same_instant()
    {
        using var h = Harness(o => o.TokenBudgets = false, RoutingHarness.Backend("a", 1));
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("retry-after-ms", "10000"));

        (await h.Client.PostAsync("/", Chat(100))).Dispose();
        using var first = await h.Client.PostAsync("/", Chat(4000));
        using var second = await h.Client.PostAsync("/", Chat(4000));

        first.Headers.GetValues("retry-after-ms").Single().Should().Be("10002");
        second.Headers.GetValues("retry-after-ms").Single().Should().Be("10002");
    }

    private static RoutingHarness Harness(Action<PriorityRoutingStrategyOptions> configure, params PriorityBackend[] backends)
        => new(
            o =>
            {
                o.Randomizer = _ => 0;
                configure(o);
            },
            backends);

    private static StringContent Chat(int maxTokens)
        => new("{\"messages\":[{\"role\":\"user\",\"content\":\"" + new string('x', maxTokens) + "\"}],\"max_tokens\":" + maxTokens.ToString(CultureInfo.InvariantCulture) + "}", Encoding.UTF8, "application/json");

    private static Func<HttpRequestMessage, HttpResponseMessage> OkWithBudget(long remaining, string reset)
        => _ => Budget(HttpStatusCode.OK, remaining, limit: null, reset);

    private static HttpResponseMessage Budget(HttpStatusCode status, long remaining, long? limit, string reset)
    {
        var response = new HttpResponseMessage(status) { Content = new StringContent("{}") };
        response.Headers.TryAddWithoutValidation("x-ratelimit-remaining-tokens", remaining.ToString(CultureInfo.InvariantCulture));
        response.Headers.TryAddWithoutValidation("x-ratelimit-reset-tokens", reset);
        if (limit is { } value)
        {
            response.Headers.TryAddWithoutValidation("x-ratelimit-limit-tokens", value.ToString(CultureInfo.InvariantCulture));
        }

        return response;
    }
}
