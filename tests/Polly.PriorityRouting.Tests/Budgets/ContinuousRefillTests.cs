using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.Extensions.Http.Resilience;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Budgets;

/// <summary>
/// A budget refilled continuously (OpenAI's) while the completions that spent it are still running: their answers, which
/// would report it, come only after its reset, so the view must see the refill by itself. On a fake clock.
/// </summary>
/// <remarks>
/// Backend "a" holds 10,000 tokens and refills 1,000 a second; every answer reports its budget as of the admission (the
/// reset is the time until it is full). Two quick 1,001-token requests leave 7,998 and tell the view the budget refills
/// continuously; two 3,751-token completions of a minute then leave 496. From there the backend holds 496 + 1,000 a
/// second: 2,498 at 2.002 s, 4,500 at 4.004 s, 6,502 at 6.006 s.
/// </remarks>
public class ContinuousRefillTests
{
    private const int Small = 800;
    private const int Large = 3000;

    /// <summary>The reset the second quick answer reports (2,002 tokens short at 1,000 a second): the view's window.</summary>
    private static readonly TimeSpan Window = TimeSpan.FromMilliseconds(2002);

    private static readonly TimeSpan Completion = TimeSpan.FromMinutes(1);

    /// <summary>Only against a hang when a test fails: a released waiter continues on the thread pool.</summary>
    private static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(30);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_continuously_refilled_backend_serves_again_once_its_refill_covers_what_running_completions_spent(bool reservationsDown)
    {
        // With shared reservations whose store is down, this process's view decides (fail open) by the same rule.
        var reservations = new ReservingStore().Fail("a");
        using var backend = new Backend(o => o.StateStore = reservationsDown ? reservations : o.StateStore);
        var running = await backend.SpendWithRunningCompletionsAsync();

        backend.Time.Advance(TimeSpan.FromMilliseconds(2100));
        using (var early = await backend.PostAsync("early", Large))
        {
            early.StatusCode.Should().Be(HttpStatusCode.TooManyRequests, "2,598 tokens are back at 2.1 s: the completion does not fit yet");
        }

        backend.Time.Advance(TimeSpan.FromSeconds(2));
        using (var refilled = await backend.PostAsync("refilled", Large))
        {
            refilled.StatusCode.Should().Be(HttpStatusCode.OK, "4,600 tokens are back at 4.1 s, though no answer has said so");
        }

        backend.Callers.Should().Equal("quick 1", "quick 2", "running 1", "running 2", "refilled");
        reservations.Headrooms.Should().HaveCount(reservationsDown ? 6 : 0, "every attempt asked the store first, the early one too");
        await backend.FinishAsync(running);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_caller_waiting_for_a_continuously_refilled_backend_is_served_at_the_refill_that_covers_it(bool synchronous)
    {
        var clock = new LateTimerTimeProvider(RoutingHarness.Start);
        using var backend = new Backend(o => o.MaxQueueWait = TimeSpan.FromSeconds(10), clock);
        var running = await backend.SpendWithRunningCompletionsAsync();

        // A synchronous caller (HttpClient.Send) waits on its own thread.
        var waiter = synchronous ? Task.Run(() => backend.Send("waiter", Large)) : backend.PostAsync("waiter", Large);
        await clock.WhenWaitingAsync(1);
        backend.AdvanceOffContext(Window);
        await clock.WhenWaitingAsync(1);
        waiter.IsCompleted.Should().BeFalse("2,498 tokens are back at the first refill: the caller waits for the next");

        backend.AdvanceOffContext(Window);
        using (var served = await waiter.WaitAsync(HangGuard))
        {
            served.StatusCode.Should().Be(HttpStatusCode.OK, "4,500 tokens are back at the second refill, though no answer has said so");
        }

        backend.Callers.Should().Equal("quick 1", "quick 2", "running 1", "running 2", "waiter");
        await backend.FinishAsync(running);
    }

    [Fact]
    public async Task A_caller_that_gives_up_waiting_leaves_the_continuous_refill_to_the_next_one()
    {
        var clock = new LateTimerTimeProvider(RoutingHarness.Start);
        using var backend = new Backend(o => o.MaxQueueWait = TimeSpan.FromSeconds(10), clock);
        var running = await backend.SpendWithRunningCompletionsAsync();
        using var cancellation = new CancellationTokenSource();

        var leaving = backend.PostAsync("leaving", Large, cancellationToken: cancellation.Token);
        var staying = backend.PostAsync("staying", Large);
        await clock.WhenWaitingAsync(2);
        backend.AdvanceOffContext(Window);
        await clock.WhenWaitingAsync(2);
        await cancellation.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => leaving.WaitAsync(HangGuard));

        backend.AdvanceOffContext(Window);
        using (var served = await staying.WaitAsync(HangGuard))
        {
            served.StatusCode.Should().Be(HttpStatusCode.OK, "the 4,500 tokens back at the second refill fit one of the two, and one is left");
        }

        backend.Callers.Should().Equal("quick 1", "quick 2", "running 1", "running 2", "staying");
        await backend.FinishAsync(running);
    }

    [Fact]
    public async Task A_background_caller_waiting_for_a_continuously_refilled_backend_is_served_once_the_refill_leaves_its_headroom()
    {
        var clock = new LateTimerTimeProvider(RoutingHarness.Start);
        using var backend = new Backend(
            o =>
            {
                o.MaxQueueWait = TimeSpan.FromSeconds(10);
                o.BackgroundHeadroom = 0.1;
            },
            clock);
        var running = await backend.SpendWithRunningCompletionsAsync();

        var waiter = backend.PostAsync("background", Large, background: true);
        await clock.WhenWaitingAsync(1);
        backend.AdvanceOffContext(Window * 3);
        await clock.WhenWaitingAsync(1);
        waiter.IsCompleted.Should().BeFalse(
            "at 6.006 s, 6,502 tokens less 3,751 leave less than the foreground keeps: its headroom, and its recent demand");

        backend.AdvanceOffContext(Window);
        using (var served = await waiter.WaitAsync(HangGuard))
        {
            served.StatusCode.Should().Be(HttpStatusCode.OK, "8,504 tokens at 8.008 s leave them");
        }

        backend.Callers.Should().Equal("quick 1", "quick 2", "running 1", "running 2", "background");
        await backend.FinishAsync(running);
    }

    /// <summary>Backend "a", refilled continuously, behind the strategy; completions marked running answer after a minute.</summary>
    private sealed class Backend : IDisposable
    {
        private const double Limit = 10_000;
        private const double PerSecond = 1_000;

        private readonly RoutingHarness _harness;
        private readonly HttpClient _client;
        private double _tokens = Limit;
        private DateTimeOffset _last;

        public Backend(Action<PriorityRoutingStrategyOptions> configure, LateTimerTimeProvider? clock = null)
        {
            _harness = new RoutingHarness(
                o =>
                {
                    o.Randomizer = _ => 0;
                    configure(o);
                },
                null,
                clock ?? new LateTimerTimeProvider(RoutingHarness.Start),
                RoutingHarness.Backend("a", 1));
            _last = _harness.Time.GetUtcNow();
            _harness.Transport.Respond("a", Admit);
            _client = new HttpClient(new ResilienceHandler(_harness.Pipeline) { InnerHandler = new RunningCompletions(_harness.Transport, _harness.Time) })
            {
                BaseAddress = new Uri("http://placeholder/"),
            };
        }

        public Microsoft.Extensions.Time.Testing.FakeTimeProvider Time => _harness.Time;

        public string[] Callers => [.. _harness.Transport.Requests.Select(r => r.Headers["x-caller"])];

        /// <summary>Two quick answers (the view learns the budget refills continuously), then two completions left running.</summary>
        public async Task<Task<HttpResponseMessage>[]> SpendWithRunningCompletionsAsync()
        {
            (await PostAsync("quick 1", Small)).StatusCode.Should().Be(HttpStatusCode.OK);
            (await PostAsync("quick 2", Small)).StatusCode.Should().Be(HttpStatusCode.OK);
            Task<HttpResponseMessage>[] running = [PostAsync("running 1", Large, running: true), PostAsync("running 2", Large, running: true)];
            running.Should().OnlyContain(call => !call.IsCompleted, "the completions take a minute");
            return running;
        }

        public Task<HttpResponseMessage> PostAsync(string caller, int maxTokens, bool running = false, bool background = false, CancellationToken cancellationToken = default)
            => _client.SendAsync(Request(caller, maxTokens, running, background), cancellationToken);

        public HttpResponseMessage Send(string caller, int maxTokens) => _client.Send(Request(caller, maxTokens, running: false, background: false));

        public void AdvanceOffContext(TimeSpan delta) => _harness.AdvanceOffContext(delta);

        /// <summary>Lets the running completions answer, after their reset: they report a window already over.</summary>
        public async Task FinishAsync(Task<HttpResponseMessage>[] running)
        {
            _harness.AdvanceOffContext(Completion);
            foreach (var call in running)
            {
                using var response = await call.WaitAsync(HangGuard);
                response.StatusCode.Should().Be(HttpStatusCode.OK);
            }
        }

        public void Dispose()
        {
            _client.Dispose();
            _harness.Dispose();
        }

        private static HttpRequestMessage Request(string caller, int maxTokens, bool running, bool background)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "/")
            {
                Content = new StringContent(
                    "{\"messages\":[{\"role\":\"user\",\"content\":\"" + new string('x', maxTokens) + "\"}],\"max_tokens\":" + maxTokens.ToString(CultureInfo.InvariantCulture) + "}",
                    Encoding.UTF8,
                    "application/json"),
            };
            request.Headers.Add("x-caller", caller);
            if (running)
            {
                request.Headers.Add(RunningCompletions.Header, "1");
            }

            if (background)
            {
                request.Options.Set(PriorityRoutingRequestOptions.Hints, new PriorityRoutingHints { Background = true });
            }

            return request;
        }

        /// <summary>Admits by the request's estimated tokens and reports the budget left and the time until it is full, as OpenAI does.</summary>
        private HttpResponseMessage Admit(HttpRequestMessage request)
        {
            var now = _harness.Time.GetUtcNow();
            _tokens = Math.Min(Limit, _tokens + (PerSecond * (now - _last).TotalSeconds));
            _last = now;
            var cost = OpenAIRequestCost.Estimate(Encoding.UTF8.GetBytes(request.Content!.ReadAsStringAsync().GetAwaiter().GetResult()));
            var admitted = _tokens >= cost;
            _tokens -= admitted ? cost : 0;
            var response = new HttpResponseMessage(admitted ? HttpStatusCode.OK : HttpStatusCode.TooManyRequests) { Content = new StringContent("{}") };
            response.Headers.TryAddWithoutValidation("x-ratelimit-remaining-tokens", ((long)_tokens).ToString(CultureInfo.InvariantCulture));
            response.Headers.TryAddWithoutValidation("x-ratelimit-limit-tokens", ((long)Limit).ToString(CultureInfo.InvariantCulture));
            response.Headers.TryAddWithoutValidation("x-ratelimit-reset-tokens", ((Limit - _tokens) / PerSecond).ToString("0.###", CultureInfo.InvariantCulture) + "s");
            return response;
        }
    }

    /// <summary>Answers a request marked running a minute after the backend admitted it, on the fake clock.</summary>
    private sealed class RunningCompletions(HttpMessageHandler inner, TimeProvider time) : DelegatingHandler(inner)
    {
        public const string Header = "x-running";

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var response = await base.SendAsync(request, cancellationToken);
            if (request.Headers.Contains(Header))
            {
                await Task.Delay(Completion, time, cancellationToken);
            }

            return response;
        }
    }
}
