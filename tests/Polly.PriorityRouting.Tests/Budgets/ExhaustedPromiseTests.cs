using System.Globalization;
using System.Net;
using System.Text;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Budgets;

/// <summary>
/// The exhausted answer's <c>Retry-After</c> when a backend's budget still has room: the backend's own recovery, not a
/// refill promised to an earlier caller. Found by <c>EveryFeatureProperties</c> (rule family "Exhausted").
/// </summary>
public class ExhaustedPromiseTests
{
    [Fact]
    public async Task A_request_the_budget_can_admit_is_told_when_the_backend_frees_up_not_a_later_refill_promised_to_others()
    {
        var answers = 0;
        using var h = new RoutingHarness(
            o =>
            {
                o.DefaultCooldown = TimeSpan.FromSeconds(1);
                o.RequestCost = r => long.Parse(r.Headers.GetValues("x-cost").Single(), CultureInfo.InvariantCulture);
            },
            RoutingHarness.Backend("a", 1));
        h.Transport.Respond("a", _ =>
        {
            // The first answer reports 100 tokens left until a reset in 10 s; the next one is a 503.
            if (answers++ > 0)
            {
                return new HttpResponseMessage(HttpStatusCode.ServiceUnavailable);
            }

            var response = new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent("{}") };
            response.Headers.TryAddWithoutValidation("x-ratelimit-remaining-tokens", "100");
            response.Headers.TryAddWithoutValidation("x-ratelimit-limit-tokens", "1000");
            response.Headers.TryAddWithoutValidation("x-ratelimit-reset-tokens", "10s");
            return response;
        });

        (await Send(h, 10)).StatusCode.Should().Be(HttpStatusCode.OK);
        using var large = await Send(h, 500);
        large.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(10), "500 tokens fit only the refill in 10 s");

        using var failed = await Send(h, 20);
        failed.StatusCode.Should().Be(HttpStatusCode.ServiceUnavailable, "the backend answered 503: it is out for DefaultCooldown (1 s)");
        using var small = await Send(h, 20);

        small.Headers.GetValues("retry-after-ms").Single().Should().Be("1002", "the backend frees up in 1 s and its budget (100 − 20 − 20 tokens) has room for 20");
    }

    private static Task<HttpResponseMessage> Send(RoutingHarness h, int cost)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent("{}", Encoding.UTF8, "application/json") };
        request.Headers.Add("x-cost", cost.ToString(CultureInfo.InvariantCulture));
        return h.Client.SendAsync(request);
    }
}
