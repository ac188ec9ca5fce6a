using System.Globalization;
using System.Net;

namespace PriorityRouting.Simulation.Routers;

/// <summary>
/// One replica's side of the shared reservations of "ours (reserved)", under the strategy (each attempt passes through
/// it): one round trip to the <see cref="SharedReservationCounter"/> before the attempt is sent — it reserves the
/// request's cost or is refused — and, off the caller's path, the answer's budget sent back to correct the counter. A
/// refused attempt never reaches the backend: the strategy gets a 429 whose <c>retry-after-ms</c> is the budget's refill,
/// and fails over as from a backend's 429 (the deadline is shared by every replica). The answers that come back carry,
/// for the strategy's budget view, the shared count instead of the backend's count of seconds ago (<see cref="HandOver"/>).
/// </summary>
/// <remarks>
/// This models, with the library's public extension points only, what a reservation inside the strategy would do; the
/// difference is that the strategy counts a refused attempt as a throttle of the backend, so the backend leaves rotation
/// until the refill for every request, however small (see docs/benchmarks.md).
/// </remarks>
internal sealed class ReservationHandler(SharedReservationCounter counter, VirtualDelays delays, TimeProvider time, TimeSpan roundTrip, HttpMessageHandler transport)
    : DelegatingHandler(transport)
{
    private static readonly string[] BudgetKinds = ["tokens", "requests"];

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var backend = request.RequestUri!.Host;

        // The simulation's prompt is 4 bytes per token, so the cost it carries is what OpenAIRequestCost estimates.
        var cost = SimulatedRequests.CostOf(request);
        var halfTrip = roundTrip / 2;
        await delays.Delay(halfTrip, cancellationToken).ConfigureAwait(false);
        var reservedAt = time.GetUtcNow();
        var reserved = counter.TryReserve(backend, cost, reservedAt, out var untilRefill);
        await delays.Delay(roundTrip - halfTrip, cancellationToken).ConfigureAwait(false);
        if (!reserved)
        {
            return Refused(request, untilRefill - (roundTrip - halfTrip));
        }

        var sentAt = time.GetUtcNow();
        var response = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.TooManyRequests)
        {
            counter.Release(backend, cost);
        }

        if (TryReadBudget(response, out var kind, out var remaining, out var limit, out var resetIn))
        {
            // Off the caller's path: the correction reaches the store half a round trip later.
            _ = CorrectAsync(backend, remaining, limit, resetIn, reservedAt, sentAt, time.GetUtcNow(), halfTrip);
            HandOver(response, backend, kind);
        }

        return response;
    }

    /// <summary>
    /// Hands the strategy's budget view what the shared counter holds now instead of what the answer said when the
    /// backend admitted the request, seconds ago: the count every replica has reserved, and the reset measured from when
    /// the request was sent. The view then spreads the callers it sends back over refills as it does for answers that
    /// arrive at once. (In the simulation the counter is read without a round trip; in the library the value would come
    /// back with the correction's or the next reservation's.)
    /// </summary>
    private void HandOver(HttpResponseMessage response, string backend, string kind)
    {
        var now = time.GetUtcNow();
        response.Headers.Remove("x-ratelimit-remaining-" + kind);
        response.Headers.Remove("x-ratelimit-reset-" + kind);
        if (counter.TryGetAvailable(backend, now, out var available, out var resetAt))
        {
            response.Headers.TryAddWithoutValidation("x-ratelimit-remaining-" + kind, available.ToString(CultureInfo.InvariantCulture));
            response.Headers.TryAddWithoutValidation("x-ratelimit-reset-" + kind, (resetAt - now).TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture) + "s");
        }
    }

    private async Task CorrectAsync(
        string backend, long remaining, long limit, TimeSpan resetIn, DateTimeOffset reservedAt, DateTimeOffset sentAt, DateTimeOffset arrivedAt, TimeSpan delay)
    {
        await delays.Delay(delay, CancellationToken.None).ConfigureAwait(false);
        counter.Correct(backend, remaining, limit, resetIn, reservedAt, sentAt, arrivedAt, time.GetUtcNow());
    }

    private static HttpResponseMessage Refused(HttpRequestMessage request, TimeSpan retryAfter)
    {
        var response = new HttpResponseMessage(HttpStatusCode.TooManyRequests) { RequestMessage = request };
        var milliseconds = Math.Max(1, (long)Math.Ceiling(retryAfter.TotalMilliseconds));
        response.Headers.TryAddWithoutValidation("retry-after-ms", milliseconds.ToString(CultureInfo.InvariantCulture));
        return response;
    }

    /// <summary>Reads the token budget an answer reports, else its request budget (a request costs 1 of those).</summary>
    private static bool TryReadBudget(HttpResponseMessage response, out string kind, out long remaining, out long limit, out TimeSpan resetIn)
    {
        foreach (var candidate in BudgetKinds)
        {
            kind = candidate;
            if (TryGet(response, "x-ratelimit-remaining-" + kind, out remaining) &&
                TryGet(response, "x-ratelimit-limit-" + kind, out limit) &&
                response.Headers.NonValidated.TryGetValues("x-ratelimit-reset-" + kind, out var reset) &&
                double.TryParse(reset.ToString().TrimEnd('s'), NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) &&
                seconds >= 0)
            {
                resetIn = TimeSpan.FromSeconds(seconds);
                return true;
            }
        }

        (kind, remaining, limit, resetIn) = (string.Empty, 0, 0, TimeSpan.Zero);
        return false;
    }

    private static bool TryGet(HttpResponseMessage response, string name, out long value)
    {
        value = 0;
        return response.Headers.NonValidated.TryGetValues(name, out var values) &&
               long.TryParse(values.ToString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out value);
    }
}
