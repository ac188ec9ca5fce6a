using System.Globalization;
using System.Net;
using System.Text;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Budgets;

/// <summary>
/// Shared claims through the strategy (see <see cref="IBackendReservationStore"/>'s overload with a claimant): what
/// claimant a request names — its fingerprint, the same on every pipeline and process — and what a caller sent back on
/// a claim is told and finds when it comes back. The store's rule itself is tested where it lives (the Redis script's
/// RedisReservationTests and the simulation's SharedReservationCounterTests, same names).
/// </summary>
public class SharedClaimTests
{
    private static readonly TimeSpan ClaimedRefill = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task A_caller_sent_back_on_a_claim_redeems_it_through_another_pipeline()
    {
        var budget = new OneClaimBudget();
        var store = new ReservingStore().AnswerClaimant("a", budget.Answer);
        using var first = Harness(store, RoutingHarness.Backend("a", 1));
        using var second = Harness(store, RoutingHarness.Backend("a", 1));
        second.Transport.Respond("a", HttpStatusCode.OK);

        using var sentBack = await first.Client.PostAsync("/v1/chat/completions", Chat("the caller's prompt"));
        first.Time.Advance(ClaimedRefill);
        second.Time.Advance(ClaimedRefill);
        using var newcomer = await second.Client.PostAsync("/v1/chat/completions", Chat("a newcomer's prompt"));
        using var retried = await second.Client.PostAsync("/v1/chat/completions", Chat("the caller's prompt"));

        sentBack.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        RetryAfterMs(sentBack).Should().Be(10_000 + ExhaustedResponse.TimerSlackMilliseconds);
        newcomer.StatusCode.Should().Be(HttpStatusCode.TooManyRequests, "the refill's room is claimed");
        RetryAfterMs(newcomer).Should().Be(10_000 + ExhaustedResponse.TimerSlackMilliseconds, "the next refill");
        retried.StatusCode.Should().Be(HttpStatusCode.OK);
        first.Transport.Requests.Should().BeEmpty();
        second.Transport.Hosts.Should().Equal("a");
        var claimants = store.Claimants.ToArray();
        claimants.Should().HaveCount(3);
        (claimants[0], claimants[2]).Should().Be((budget.Holder, budget.Holder), "the same request names the same claimant on both pipelines");
        claimants[0].Should().NotBe(0);
        claimants[1].Should().NotBe(claimants[0], "another body is another claimant");
        budget.Redeemed.Should().BeTrue();
    }

    [Fact]
    public async Task The_exhausted_answer_tells_the_claims_moment_where_this_process_view_would_send_its_caller_later()
    {
        // This process saw a's budget spent until 10 s; the store claimed room for every caller in that refill (the
        // other replicas sent few back). The view alone would spread this process's callers over later windows: a
        // caller told a later moment misses its claim's grace.
        var store = new ReservingStore();
        using var h = Harness(store, RoutingHarness.Backend("a", 1));
        h.Transport.Respond("a", _ => Budget(remaining: 0, limit: 1_000, reset: "10s"));
        (await h.Client.PostAsync("/", Chat("warm-up"))).Dispose();
        store.AnswerClaimant("a", (key, cost, claimant, now) => BackendReservation.Claimed(key, cost, RoutingHarness.Start + ClaimedRefill - now));

        var answers = new List<long>();
        for (var i = 0; i < 4; i++)
        {
            using var response = await h.Client.PostAsync("/", Chat("caller " + i.ToString(CultureInfo.InvariantCulture), maxTokens: 400));
            response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
            answers.Add(RetryAfterMs(response));
        }

        answers.Should().AllBeEquivalentTo(10_000 + ExhaustedResponse.TimerSlackMilliseconds);
    }

    [Fact]
    public async Task A_refusal_without_a_claim_still_spreads_this_process_callers_over_the_refills()
    {
        // Unchanged: a store that keeps no claims (or a background caller's refusal) leaves the spreading to the view.
        var store = new ReservingStore();
        using var h = Harness(store, RoutingHarness.Backend("a", 1));
        h.Transport.Respond("a", _ => Budget(remaining: 0, limit: 1_000, reset: "10s"));
        (await h.Client.PostAsync("/", Chat("warm-up"))).Dispose();
        store.Refuse("a", ClaimedRefill);

        var answers = new List<long>();
        for (var i = 0; i < 4; i++)
        {
            using var response = await h.Client.PostAsync("/", Chat("caller " + i.ToString(CultureInfo.InvariantCulture), maxTokens: 400));
            answers.Add(RetryAfterMs(response));
        }

        answers.Should().Equal(10_002, 10_002, 20_002, 20_002);
    }

    [Theory]
    [InlineData(0.3)]
    [InlineData(0)]
    public async Task A_background_request_never_claims(double backgroundHeadroom)
    {
        var store = new ReservingStore().Refuse("a", ClaimedRefill);
        using var h = Harness(store, o => o.BackgroundHeadroom = backgroundHeadroom, RoutingHarness.Backend("a", 1));
        using var background = new HttpRequestMessage(HttpMethod.Post, "/") { Content = Chat("nightly batch") };
        background.Options.Set(PriorityRoutingRequestOptions.Hints, new PriorityRoutingHints { Background = true });

        (await h.Client.SendAsync(background)).Dispose();
        (await h.Client.PostAsync("/", Chat("nightly batch"))).Dispose();

        var claimants = store.Claimants.ToArray();
        claimants.Should().HaveCount(2);
        claimants[0].Should().Be(0, "a background request never claims, even when no headroom tells it apart");
        claimants[1].Should().NotBe(0, "the same request in the foreground does");
    }

    [Fact]
    public async Task The_same_request_names_the_same_claimant_on_two_pipelines_and_another_request_another()
    {
        var store = new ReservingStore().Refuse("a", ClaimedRefill);
        using var first = Harness(store, RoutingHarness.Backend("a", 1));
        using var second = Harness(store, RoutingHarness.Backend("a", 1));

        (await first.Client.PostAsync("/v1/chat/completions?api-version=1", Chat("same"))).Dispose();
        (await second.Client.PostAsync("/v1/chat/completions?api-version=1", new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(ChatBody("same", 100)))))).Dispose();
        second.Client.Send(new HttpRequestMessage(HttpMethod.Post, "http://another-placeholder/v1/chat/completions?api-version=1") { Content = Chat("same") }).Dispose();
        (await first.Client.PostAsync("/v1/chat/completions?api-version=1", Chat("other"))).Dispose();
        (await first.Client.PostAsync("/v1/chat/completions?api-version=2", Chat("same"))).Dispose();
        (await first.Client.PutAsync("/v1/chat/completions?api-version=1", Chat("same"))).Dispose();
        (await first.Client.PostAsync("/v1/chat/completions?api-version=1", null)).Dispose();
        (await second.Client.PostAsync("/v1/chat/completions?api-version=1", null)).Dispose();

        var claimants = store.Claimants.ToArray();
        claimants.Should().HaveCount(8).And.NotContain(0);
        claimants[1].Should().Be(claimants[0], "a streamed body is the same bytes");
        claimants[2].Should().Be(claimants[0], "sent synchronously, to another base address");
        claimants[3..7].Should().OnlyHaveUniqueItems().And.NotContain(claimants[0], "another body, query or method");
        claimants[7].Should().Be(claimants[6], "no body: the method, path and query");
    }

    [Fact]
    public void A_body_that_cannot_be_read_twice_names_no_claimant()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "http://placeholder/v1/chat/completions")
        {
            Content = new StreamContent(new ForwardOnlyStream(Encoding.UTF8.GetBytes(ChatBody("once", 100)))),
        };

        RequestFingerprint.Of(request).Should().Be(0);
    }

    [Fact]
    public async Task A_queued_caller_refused_on_a_claim_waits_for_it_and_redeems_it_within_its_own_call()
    {
        var budget = new OneClaimBudget();
        var store = new ReservingStore().AnswerClaimant("a", budget.Answer);
        using var h = Harness(store, o => o.MaxQueueWait = TimeSpan.FromSeconds(15), RoutingHarness.Backend("a", 1));
        h.Transport.Respond("a", HttpStatusCode.OK);

        var waiting = h.Client.PostAsync("/", Chat("queued"));
        waiting.IsCompleted.Should().BeFalse("the caller waits for its claim");
        h.AdvanceOffContext(ClaimedRefill);
        using var response = await waiting.WaitAsync(TimeSpan.FromSeconds(30));

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        budget.Redeemed.Should().BeTrue();
        store.Claimants.Should().Equal(budget.Holder, budget.Holder);
        h.Transport.CountFor("a").Should().Be(1);
    }

    [Fact]
    public async Task A_caller_that_waited_for_its_claim_and_is_admitted_elsewhere_gives_the_claim_back()
    {
        // a claims its refill for the caller; b is refused until 4 s, then grants: the caller waits (MaxQueueWait), and
        // its new round, in which a is throttled, is admitted on b before a's claim is due.
        var bRefill = RoutingHarness.Start + TimeSpan.FromSeconds(4);
        var store = new ReservingStore()
            .AnswerClaimant("a", (key, cost, _, now) => BackendReservation.Claimed(key, cost, RoutingHarness.Start + ClaimedRefill - now))
            .AnswerClaimant("b", (key, cost, _, now) => now < bRefill
                ? BackendReservation.Refused(key, cost, bRefill - now)
                : BackendReservation.Granted(key, cost, now, 1, cost));
        using var h = Harness(store, o => o.MaxQueueWait = TimeSpan.FromSeconds(15), RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2));
        h.Transport.Respond("b", HttpStatusCode.OK);

        var waiting = h.Client.PostAsync("/", Chat("served by b after a wait"));
        waiting.IsCompleted.Should().BeFalse("the caller waits for b's refill");

        // Meanwhile another request's 429 takes a out of rotation: the new round never asks a again.
        await store.Marks.MarkUnavailableAsync(RoutingHarness.Key("a"), new BackendUnavailability(RoutingHarness.Start + TimeSpan.FromMinutes(1), BackendUnavailableReason.Throttled), RoutingHarness.Start, default);
        h.AdvanceOffContext(TimeSpan.FromSeconds(4));
        using var response = await waiting.WaitAsync(TimeSpan.FromSeconds(30));

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.CountFor("b").Should().Be(1);
        store.ReleasedClaims.Should().Equal([(RoutingHarness.Key("a"), store.Claimants.First())], "the claim it waited beside holds room it will not come for");
    }

    [Fact]
    public async Task A_caller_that_redeems_its_claim_after_a_wait_gives_back_nothing()
    {
        var budget = new OneClaimBudget();
        var store = new ReservingStore().AnswerClaimant("a", budget.Answer);
        using var h = Harness(store, o => o.MaxQueueWait = TimeSpan.FromSeconds(15), RoutingHarness.Backend("a", 1));
        h.Transport.Respond("a", HttpStatusCode.OK);

        var waiting = h.Client.PostAsync("/", Chat("queued"));
        h.AdvanceOffContext(ClaimedRefill);
        using var response = await waiting.WaitAsync(TimeSpan.FromSeconds(30));

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        budget.Redeemed.Should().BeTrue();
        store.ReleasedClaims.Should().BeEmpty("the admission redeemed the claim: nothing is left to give back");
    }

    [Fact]
    public async Task A_request_limited_by_hints_claims_only_on_the_backends_it_may_use()
    {
        var store = new ReservingStore()
            .AnswerClaimant("a", (key, cost, _, now) => BackendReservation.Claimed(key, cost, TimeSpan.FromSeconds(3)))
            .AnswerClaimant("b", (key, cost, _, now) => BackendReservation.Claimed(key, cost, ClaimedRefill));
        using var h = Harness(store, RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2));
        using var request = new HttpRequestMessage(HttpMethod.Post, "/") { Content = Chat("only b") };
        request.Options.Set(PriorityRoutingRequestOptions.Hints, new PriorityRoutingHints { OnlyBackends = ["b"] });

        using var response = await h.Client.SendAsync(request);

        store.Reserved.Select(r => r.Key.Backend).Should().Equal("b@http://b");
        RetryAfterMs(response).Should().Be(10_000 + ExhaustedResponse.TimerSlackMilliseconds, "b's claim, not a's sooner refill it may not use");
    }

    [Fact]
    public async Task A_pinned_request_claims_on_its_pinned_backend()
    {
        var pins = new InMemoryAffinityStore(1_000, TimeProvider.System);
        pins.Pin("resp_pinned", "a@http://a", TimeSpan.FromDays(1));
        var store = new ReservingStore().AnswerClaimant("a", (key, cost, _, now) => BackendReservation.Claimed(key, cost, ClaimedRefill));
        using var h = Harness(store, o => o.Affinity.Store = pins, RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2));

        using var response = await h.Client.PostAsync("/v1/responses", Json("{\"model\":\"gpt-4o\",\"input\":\"and then?\",\"previous_response_id\":\"resp_pinned\"}"));

        RetryAfterMs(response).Should().Be(10_000 + ExhaustedResponse.TimerSlackMilliseconds);
        store.Claimants.Should().ContainSingle().Which.Should().NotBe(0);
    }

    [Fact]
    public async Task A_model_fallback_names_the_same_claimant_on_every_model_of_its_chain()
    {
        var a = RoutingHarness.Backend("a", 1);
        a.Models["gpt-4o"] = "gpt-4o-ptu";
        var b = RoutingHarness.Backend("b", 1);
        b.Models["gpt-4o-mini"] = "mini";
        var store = new ReservingStore()
            .AnswerClaimant("a", (key, cost, _, now) => BackendReservation.Claimed(key, cost, TimeSpan.FromSeconds(9)))
            .AnswerClaimant("b", (key, cost, _, now) => BackendReservation.Claimed(key, cost, TimeSpan.FromSeconds(4)));
        using var h = Harness(store, o => o.ModelFallbacks["gpt-4o"] = ["gpt-4o-mini"], a, b);

        using var exhausted = await h.Client.PostAsync("/v1/chat/completions", Json("{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":100}"));

        store.Reserved.Select(r => r.Key).Should().Equal(RoutingHarness.Key("a", "gpt-4o-ptu"), RoutingHarness.Key("b", "mini"));
        var claimants = store.Claimants.ToArray();
        claimants[0].Should().NotBe(0);
        claimants[1].Should().Be(claimants[0]);
        RetryAfterMs(exhausted).Should().Be(4_000 + ExhaustedResponse.TimerSlackMilliseconds, "the fallback's claim comes first");
    }

    [Fact]
    public async Task A_caller_admitted_elsewhere_gives_back_the_claims_its_refusals_hold()
    {
        var store = new ReservingStore()
            .AnswerClaimant("a", (key, cost, _, now) => BackendReservation.Claimed(key, cost, TimeSpan.FromSeconds(9)))
            .Refuse("b", TimeSpan.FromSeconds(4));
        using var h = Harness(store, RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2), RoutingHarness.Backend("c", 3));
        h.Transport.Respond("c", HttpStatusCode.OK);

        using var response = await h.Client.PostAsync("/", Chat("served by c"));

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        var claimant = store.Claimants.First();
        store.ReleasedClaims.Should().Equal([(RoutingHarness.Key("a"), claimant)], "a's claim holds room it will not come for; b's refusal held none");
    }

    [Fact]
    public async Task A_caller_sent_back_keeps_only_its_soonest_claim()
    {
        var store = new ReservingStore()
            .AnswerClaimant("a", (key, cost, _, now) => BackendReservation.Claimed(key, cost, TimeSpan.FromSeconds(9)))
            .AnswerClaimant("b", (key, cost, _, now) => BackendReservation.Claimed(key, cost, TimeSpan.FromSeconds(4)))
            .AnswerClaimant("c", (key, cost, _, now) => BackendReservation.Claimed(key, cost, TimeSpan.FromSeconds(20)));
        using var h = Harness(store, RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2), RoutingHarness.Backend("c", 3));

        using var response = await h.Client.PostAsync("/", Chat("sent back"));

        RetryAfterMs(response).Should().Be(4_000 + ExhaustedResponse.TimerSlackMilliseconds);
        var claimant = store.Claimants.First();
        store.ReleasedClaims.Should().Equal([(RoutingHarness.Key("a"), claimant), (RoutingHarness.Key("c"), claimant)], "it comes back for b's claim only");
    }

    [Fact]
    public async Task A_caller_that_gives_up_while_it_waits_for_its_claim_gives_it_back()
    {
        var store = new ReservingStore().AnswerClaimant("a", (key, cost, _, now) => BackendReservation.Claimed(key, cost, ClaimedRefill));
        using var h = Harness(store, o => o.MaxQueueWait = TimeSpan.FromSeconds(15), RoutingHarness.Backend("a", 1));
        using var cancellation = new CancellationTokenSource();

        var waiting = h.Client.PostAsync("/", Chat("given up"), cancellation.Token);
        waiting.IsCompleted.Should().BeFalse("the caller waits for its claim");
        await cancellation.CancelAsync();
        var giveUp = async () => await waiting.WaitAsync(TimeSpan.FromSeconds(30));

        await giveUp.Should().ThrowAsync<OperationCanceledException>();
        store.ReleasedClaims.Should().Equal([(RoutingHarness.Key("a"), store.Claimants.Single())], "nobody comes for the claim: its room goes back to the others");
        h.Transport.Requests.Should().BeEmpty();
    }

    [Fact]
    public async Task A_caller_that_gave_up_while_the_store_claimed_for_it_gives_the_claim_back()
    {
        using var cancellation = new CancellationTokenSource();
        var store = new ReservingStore().AnswerClaimant("a", (key, cost, _, now) =>
        {
            // The caller gives up while the reservation travels; the store's answer claims room for it all the same.
            cancellation.Cancel();
            return BackendReservation.Claimed(key, cost, ClaimedRefill);
        });
        using var h = Harness(store, RoutingHarness.Backend("a", 1));

        var giveUp = async () => await h.Client.PostAsync("/", Chat("given up"), cancellation.Token);

        await giveUp.Should().ThrowAsync<OperationCanceledException>();
        store.ReleasedClaims.Should().Equal([(RoutingHarness.Key("a"), store.Claimants.Single())]);
        h.Transport.Requests.Should().BeEmpty();
    }

    [Fact]
    public async Task A_claim_beyond_MaxCooldown_is_given_back_since_the_caller_is_told_to_come_back_sooner()
    {
        // The caller is told MaxCooldown, not the claim's moment: nobody comes for the claim then, and a caller admitted
        // elsewhere would never give it back (its refusal no longer says it holds one).
        var store = new ReservingStore().AnswerClaimant("a", (key, cost, _, now) => BackendReservation.Claimed(key, cost, TimeSpan.FromSeconds(40)));
        using var h = Harness(store, o => o.MaxCooldown = TimeSpan.FromSeconds(30), RoutingHarness.Backend("a", 1));

        using var response = await h.Client.PostAsync("/", Chat("bounded"));

        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        RetryAfterMs(response).Should().BeLessThanOrEqualTo(30_000 + ExhaustedResponse.TimerSlackMilliseconds);
        store.ReleasedClaims.Should().Equal([(RoutingHarness.Key("a"), store.Claimants.Single())]);
    }

    [Fact]
    public async Task A_claim_on_the_first_model_is_given_back_when_a_fallback_model_serves()
    {
        var a = RoutingHarness.Backend("a", 1);
        a.Models["gpt-4o"] = "gpt-4o-ptu";
        var b = RoutingHarness.Backend("b", 1);
        b.Models["gpt-4o-mini"] = "mini";
        var store = new ReservingStore().AnswerClaimant("a", (key, cost, _, now) => BackendReservation.Claimed(key, cost, TimeSpan.FromSeconds(9)));
        using var h = Harness(store, o => o.ModelFallbacks["gpt-4o"] = ["gpt-4o-mini"], a, b);
        h.Transport.Respond("b", HttpStatusCode.OK);

        using var served = await h.Client.PostAsync("/v1/chat/completions", Json("{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":100}"));

        served.StatusCode.Should().Be(HttpStatusCode.OK);
        store.ReleasedClaims.Should().Equal([(RoutingHarness.Key("a", "gpt-4o-ptu"), store.Claimants.First())], "the caller will not come back for the first model's claim");
    }

    private static RoutingHarness Harness(ReservingStore store, params PriorityBackend[] backends) => Harness(store, null, backends);

    private static RoutingHarness Harness(ReservingStore store, Action<PriorityRoutingStrategyOptions>? configure, params PriorityBackend[] backends)
        => new(
            o =>
            {
                o.StateStore = store;
                o.Randomizer = _ => 0;
                configure?.Invoke(o);
            },
            backends);

    private static long RetryAfterMs(HttpResponseMessage response)
        => long.Parse(response.Headers.GetValues("retry-after-ms").Single(), CultureInfo.InvariantCulture);

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private static string ChatBody(string prompt, int maxTokens)
        => "{\"messages\":[{\"role\":\"user\",\"content\":\"" + prompt + "\"}],\"max_tokens\":" + maxTokens.ToString(CultureInfo.InvariantCulture) + "}";

    private static StringContent Chat(string prompt, int maxTokens = 100) => Json(ChatBody(prompt, maxTokens));

    private static HttpResponseMessage Budget(long remaining, long limit, string reset)
    {
        var response = new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent("{}") };
        response.Headers.TryAddWithoutValidation("x-ratelimit-remaining-tokens", remaining.ToString(CultureInfo.InvariantCulture));
        response.Headers.TryAddWithoutValidation("x-ratelimit-limit-tokens", limit.ToString(CultureInfo.InvariantCulture));
        response.Headers.TryAddWithoutValidation("x-ratelimit-reset-tokens", reset);
        return response;
    }

    /// <summary>
    /// A shared budget spent until its refill at 10 s, whose room holds one request: what the store's rule does for the
    /// first caller refused before the refill (it claims it), the others (told the next refill, at 20 s) and the claimant
    /// coming back (early: the time left; at the refill: granted).
    /// </summary>
    private sealed class OneClaimBudget
    {
        private static readonly DateTimeOffset Refill = RoutingHarness.Start + ClaimedRefill;
        private long _sequence;

        public long Holder { get; private set; }

        public bool Redeemed { get; private set; }

        public BackendReservation Answer(BackendStateKey key, long cost, long claimant, DateTimeOffset now)
        {
            if (claimant != 0 && claimant == Holder && !Redeemed)
            {
                if (now < Refill)
                {
                    return BackendReservation.Claimed(key, cost, Refill - now);
                }

                Redeemed = true;
                return BackendReservation.Granted(key, cost, now, ++_sequence, cost);
            }

            if (now < Refill && Holder == 0 && claimant != 0)
            {
                Holder = claimant;
                return BackendReservation.Claimed(key, cost, Refill - now);
            }

            return BackendReservation.Refused(key, cost, Refill + ClaimedRefill - now);
        }
    }

    private sealed class ForwardOnlyStream(byte[] bytes) : MemoryStream(bytes)
    {
        public override bool CanSeek => false;
    }
}
