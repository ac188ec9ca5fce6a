using System.Globalization;
using System.Net;
using System.Text;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Budgets;

/// <summary>
/// configuration.md, "Cancellation": a cancelled waiter's room goes to the first waiter promised a later refill that
/// fits in it, "else to whoever is promised next". Found by <c>EveryFeatureProperties</c> (rule family "Waits").
/// </summary>
public class CancelledWaiterRoomTests
{
    [Fact]
    public async Task A_cancelled_waiters_room_lets_the_next_caller_wait_for_it_even_after_a_later_refill_was_promised()
    {
        using var h = new RoutingHarness(
            o =>
            {
                o.MaxQueueWait = TimeSpan.FromSeconds(1);
                o.RequestCost = r => long.Parse(r.Headers.GetValues("x-cost").Single(), CultureInfo.InvariantCulture);
            },
            RoutingHarness.Backend("a", 1));
        h.Transport.Respond("a", _ =>
        {
            // 100 of 1,000 tokens left until the refill 4 s after the first answer.
            var response = new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent("{}") };
            response.Headers.TryAddWithoutValidation("x-ratelimit-remaining-tokens", "100");
            response.Headers.TryAddWithoutValidation("x-ratelimit-limit-tokens", "1000");
            response.Headers.TryAddWithoutValidation("x-ratelimit-reset-tokens", "4s");
            return response;
        });
        (await Send(h, 900)).Dispose();
        h.Time.Advance(TimeSpan.FromSeconds(3.5));

        using var cancellation = new CancellationTokenSource();
        var waiter = Send(h, 900, cancellation.Token);
        waiter.IsCompleted.Should().BeFalse("the refill in 0.5 s has room for 900 tokens: the caller waits for it");
        using (var beyond = await Send(h, 900))
        {
            beyond.StatusCode.Should().Be(HttpStatusCode.TooManyRequests, "that refill is the waiter's, and the next one is beyond the 1 s bound");
        }

        await cancellation.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiter);

        var next = Send(h, 900);
        next.IsCompleted.Should().BeFalse("the cancelled waiter's room in the refill 0.5 s away is free again: the next caller is promised it, and waits");
    }

    private static Task<HttpResponseMessage> Send(RoutingHarness h, int cost, CancellationToken cancellationToken = default)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent("{}", Encoding.UTF8, "application/json") };
        request.Headers.Add("x-cost", cost.ToString(CultureInfo.InvariantCulture));
        return h.Client.SendAsync(request, cancellationToken);
    }
}
