using System.Net;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Concurrency;

/// <summary>
/// <see cref="PriorityBackend.MaxConcurrentRequests"/> through the strategy: a response counts until its body ends, a
/// request beyond the cap goes on, and when every backend is at its cap the caller is answered at once.
/// </summary>
public partial class ConcurrencyCapTests
{
    [Fact]
    public async Task A_backend_at_its_cap_sends_the_request_to_the_same_tier_first_then_to_the_lower_one()
    {
        using var h = Harness(Capped("a", 1, 1), Capped("b", 1, 1), RoutingHarness.Backend("c", 2));

        using var first = await Hold(h);
        using var second = await Hold(h);
        using var third = await Hold(h);

        h.Transport.Hosts.Should().Equal("a", "b", "c");
    }

    [Fact]
    public async Task A_response_holds_its_slot_until_its_body_is_read_to_the_end_or_disposed()
    {
        using var h = Harness(Capped("a", 1, 1), RoutingHarness.Backend("b", 2));

        var read = await Hold(h);
        (await h.Client.GetAsync("/")).Dispose();
        await read.Content.ReadAsStringAsync();
        (await h.Client.GetAsync("/")).Dispose();
        var disposed = await Hold(h);
        (await h.Client.GetAsync("/")).Dispose();
        disposed.Dispose();
        (await h.Client.GetAsync("/")).Dispose();
        read.Dispose();

        h.Transport.Hosts.Should().Equal("a", "b", "a", "a", "b", "a");
    }

    [Fact]
    public async Task When_every_backend_is_at_its_cap_the_caller_is_answered_429_with_a_short_retry_after_without_a_call()
    {
        using var h = Harness(Capped("a", 1, 1), Capped("b", 2, 1));
        using var first = await Hold(h);
        using var second = await Hold(h);

        using var exhausted = await h.Client.GetAsync("/");

        exhausted.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        exhausted.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(1));
        h.Transport.Hosts.Should().Equal("a", "b");
    }

    [Fact]
    public async Task An_attempt_that_fails_over_gives_its_slot_back()
    {
        using var h = Harness(Capped("a", 1, 1), RoutingHarness.Backend("b", 2));
        var answered = 0;
        h.Transport.Respond("a", _ => Interlocked.Increment(ref answered) == 1
            ? new HttpResponseMessage(HttpStatusCode.TooManyRequests) { Headers = { { "Retry-After", "0" } } }
            : new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent("ok") });

        using var failedOver = await Hold(h);
        using var next = await Hold(h);

        h.Transport.Hosts.Should().Equal("a", "b", "a");
    }

    [Fact]
    public async Task An_empty_answer_gives_its_slot_back_at_once()
    {
        using var h = Harness(Capped("a", 1, 1), RoutingHarness.Backend("b", 2));
        h.Transport.Respond("a", HttpStatusCode.NoContent);

        using var first = await Hold(h);
        using var second = await Hold(h);

        h.Transport.Hosts.Should().Equal("a", "a");
    }

    [Fact]
    public async Task The_snapshot_of_any_pipeline_on_the_store_shows_the_requests_in_flight()
    {
        using var h = Harness(Capped("a", 1, 2), RoutingHarness.Backend("b", 2));
        using var first = await Hold(h);

        // Another pipeline on the same store (a reload, another client) sees the same count.
        var status = PriorityRoutingSnapshot.Create(h.Options, h.Store, h.Time.GetUtcNow()).Backends;

        status.Select(b => (b.Name, b.InFlight, b.MaxConcurrentRequests)).Should().Equal(("a", 1, 2), ("b", 0, (int?)null));
        first.Dispose();
        PriorityRoutingSnapshot.Create(h.Options, h.Store, h.Time.GetUtcNow()).Backends[0].InFlight.Should().Be(0);
    }

    [Fact]
    public async Task With_MaxQueueWait_a_request_that_finds_every_backend_at_its_cap_is_sent_when_a_slot_frees()
    {
        using var h = new RoutingHarness(o => o.MaxQueueWait = TimeSpan.FromSeconds(5), Capped("a", 1, 1));
        var first = await Hold(h);

        var waiting = Hold(h);
        waiting.IsCompleted.Should().BeFalse("the only slot is held");
        first.Dispose();
        using var second = await waiting;

        second.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("a", "a");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task With_MaxQueueWait_a_slot_given_back_goes_to_a_waiting_foreground_request_before_a_background_one(bool backgroundWaitsFirst)
    {
        // Each wait for a slot is bounded by a timer on the clock: once two exist, both requests wait.
        var time = new TimerCountingTimeProvider(RoutingHarness.Start);
        using var h = new RoutingHarness(o => o.MaxQueueWait = TimeSpan.FromSeconds(5), null, time, Capped("a", 1, 1));
        var first = await Hold(h);
        var timers = 0;
        var foreground = backgroundWaitsFirst ? null : Waiting(Hold(h));
        var background = Waiting(h.Client.SendAsync(Background(), HttpCompletionOption.ResponseHeadersRead));
        foreground ??= Waiting(Hold(h));

        // Given back off the thread pool: the woken continuations queue in the order they waited, whatever the test's thread.
        var releasing = new Thread(first.Dispose);
        releasing.Start();
        releasing.Join();
        (await Task.WhenAny(foreground, background)).Should().BeSameAs(foreground, "the slot goes to the foreground request, as a refill's room does");
        using var served = await foreground;

        served.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("a", "a");
        background.IsCompleted.Should().BeFalse();
        served.Dispose();
        using var next = await background;
        next.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("a", "a", "a");

        Task<HttpResponseMessage> Waiting(Task<HttpResponseMessage> request)
        {
            time.WaitForTimers(++timers).Should().BeTrue("the request waits for a slot");
            request.IsCompleted.Should().BeFalse("the only slot is held");
            return request;
        }
    }

    [Fact]
    public async Task A_synchronous_foreground_send_waiting_for_a_slot_gets_it_before_a_background_request_that_waited_first()
    {
        var time = new TimerCountingTimeProvider(RoutingHarness.Start);
        using var h = new RoutingHarness(o => o.MaxQueueWait = TimeSpan.FromSeconds(5), null, time, Capped("a", 1, 1));
        var first = await Hold(h);

        // Each wait for a slot is bounded by a timer of its own; the pipeline made one already (its wait queue's).
        var timers = time.Created;
        var background = h.Client.SendAsync(Background(), HttpCompletionOption.ResponseHeadersRead);
        time.WaitForTimers(timers + 1).Should().BeTrue("the background request waits for a slot");
        var foreground = Task.Factory.StartNew(
            () => h.Client.Send(new HttpRequestMessage(HttpMethod.Get, "/"), HttpCompletionOption.ResponseHeadersRead),
            CancellationToken.None,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default);
        time.WaitForTimers(timers + 2).Should().BeTrue("the synchronous foreground request waits for a slot, on its own thread");

        var releasing = new Thread(first.Dispose);
        releasing.Start();
        releasing.Join();
        (await Task.WhenAny(foreground, background)).Should().BeSameAs(foreground, "the slot goes to the foreground request, synchronous or not");
        using var served = await foreground;

        served.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("a", "a");
        background.IsCompleted.Should().BeFalse();
        served.Dispose();
        using var next = await background;
        next.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("a", "a", "a");
    }

    [Fact]
    public async Task A_synchronous_send_waiting_for_a_slot_is_sent_from_its_own_thread()
    {
        // HttpClient.Send blocks its thread anyway: a continuation on the thread pool would take a second thread, which
        // then blocks again in the synchronous send below.
        var time = new TimerCountingTimeProvider(RoutingHarness.Start);
        using var h = new RoutingHarness(o => o.MaxQueueWait = TimeSpan.FromSeconds(5), null, time, Capped("a", 1, 1));
        var first = await Hold(h);
        var timers = time.Created;
        var callerThread = 0;
        var waiting = Task.Factory.StartNew(
            () =>
            {
                callerThread = Environment.CurrentManagedThreadId;
                return h.Client.Send(new HttpRequestMessage(HttpMethod.Get, "/"), HttpCompletionOption.ResponseHeadersRead);
            },
            CancellationToken.None,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default);
        time.WaitForTimers(timers + 1).Should().BeTrue("the synchronous request waits for a slot (a timer bounds its wait)");

        var releasing = new Thread(first.Dispose);
        releasing.Start();
        releasing.Join();
        using var second = await waiting;

        second.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("a", "a");
        h.Transport.Requests.Last().ThreadId.Should().Be(callerThread, "the waiter is sent from its own thread");
    }

    [Fact]
    public async Task A_background_request_waiting_for_a_slot_gets_the_second_of_two_slots_given_back_while_a_foreground_one_waited()
    {
        var time = new TimerCountingTimeProvider(RoutingHarness.Start);
        using var h = new RoutingHarness(o => o.MaxQueueWait = TimeSpan.FromSeconds(5), null, time, Capped("a", 1, 2));
        var first = await Hold(h);
        var second = await Hold(h);
        var background = h.Client.SendAsync(Background(), HttpCompletionOption.ResponseHeadersRead);
        time.WaitForTimers(1).Should().BeTrue("the background request waits for a slot");
        var foreground = Hold(h);
        time.WaitForTimers(2).Should().BeTrue("the foreground request waits for a slot");

        // Both given back before the foreground request is admitted: its turn ends with the second slot free.
        first.Dispose();
        second.Dispose();
        using var served = await foreground;
        using var next = await background;

        (served.StatusCode, next.StatusCode).Should().Be((HttpStatusCode.OK, HttpStatusCode.OK));
        h.Transport.Hosts.Should().Equal("a", "a", "a", "a");
    }

    [Fact]
    public async Task A_background_request_waiting_for_a_slot_is_woken_once_a_waiting_foreground_caller_cancelled()
    {
        var time = new TimerCountingTimeProvider(RoutingHarness.Start);
        using var h = new RoutingHarness(o => o.MaxQueueWait = TimeSpan.FromSeconds(5), null, time, Capped("a", 1, 1));
        var first = await Hold(h);
        var background = h.Client.SendAsync(Background(), HttpCompletionOption.ResponseHeadersRead);
        time.WaitForTimers(1).Should().BeTrue("the background request waits for a slot");
        using var cancel = new CancellationTokenSource();
        var foreground = h.Client.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/"), HttpCompletionOption.ResponseHeadersRead, cancel.Token);
        time.WaitForTimers(2).Should().BeTrue("the foreground request waits for a slot");

        await cancel.CancelAsync();
        await FluentActions.Awaiting(() => foreground).Should().ThrowAsync<OperationCanceledException>();
        first.Dispose();
        using var next = await background;

        next.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("a", "a");
    }

    [Fact]
    public async Task With_MaxQueueWait_a_request_waits_for_a_slot_no_longer_than_the_bound()
    {
        using var h = new RoutingHarness(o => o.MaxQueueWait = TimeSpan.FromSeconds(5), Capped("a", 1, 1));
        using var first = await Hold(h);

        var waiting = Hold(h);
        h.Time.Advance(TimeSpan.FromSeconds(4.9));
        waiting.IsCompleted.Should().BeFalse();
        h.Time.Advance(TimeSpan.FromSeconds(0.1));
        using var exhausted = await waiting;

        exhausted.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        exhausted.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(1));
        h.Transport.Hosts.Should().Equal("a");
    }

    [Fact]
    public async Task A_caller_that_cancels_while_waiting_for_a_slot_gets_its_cancellation()
    {
        using var h = new RoutingHarness(o => o.MaxQueueWait = TimeSpan.FromSeconds(5), Capped("a", 1, 1));
        using var first = await Hold(h);
        using var cancel = new CancellationTokenSource();

        var waiting = h.Client.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/"), HttpCompletionOption.ResponseHeadersRead, cancel.Token);
        await cancel.CancelAsync();

        await FluentActions.Awaiting(() => waiting).Should().ThrowAsync<OperationCanceledException>();
        h.Transport.Hosts.Should().Equal("a");
    }

    [Fact]
    public void Admission_without_caps_or_declared_quotas_allocates_nothing()
    {
        var options = new PriorityRoutingStrategyOptions { Backends = [RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2)] };
        var pool = new BackendPool(options, new SharedBackendState(new InMemoryBackendStateStore()), new Microsoft.Extensions.Time.Testing.FakeTimeProvider(RoutingHarness.Start));
        var route = new RequestRoute(null, cost: 500);
        Admit(pool, route);

        var admitted = 0;
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1_000; i++)
        {
            admitted += Admit(pool, route) ? 1 : 0;
        }

        (GC.GetAllocatedBytesForCurrentThread() - before).Should().Be(0);
        admitted.Should().Be(1_000);
    }

    [Fact]
    public void A_synchronous_Send_holds_its_slot_until_its_body_is_disposed()
    {
        using var h = Harness(Capped("a", 1, 1), RoutingHarness.Backend("b", 2));

        var held = h.Client.Send(new HttpRequestMessage(HttpMethod.Get, "/"), HttpCompletionOption.ResponseHeadersRead);
        h.Client.Send(new HttpRequestMessage(HttpMethod.Get, "/")).Dispose();
        held.Dispose();
        h.Client.Send(new HttpRequestMessage(HttpMethod.Get, "/")).Dispose();

        h.Transport.Hosts.Should().Equal("a", "b", "a");
    }

    [Fact]
    public async Task A_pipeline_rebuilt_on_the_same_store_counts_the_requests_the_old_one_has_in_flight()
    {
        using var old = Harness(Capped("a", 1, 1), RoutingHarness.Backend("b", 2));
        using var rebuilt = new RoutingHarness(o => { o.Randomizer = _ => 0; o.StateStore = old.Store; }, Capped("a", 1, 1), RoutingHarness.Backend("b", 2));

        using var held = await Hold(old);
        using var fromRebuilt = await Hold(rebuilt);

        old.Transport.Hosts.Should().Equal("a");
        rebuilt.Transport.Hosts.Should().Equal(["b"], "the old pipeline's request still holds a's only slot");
    }

    [Fact]
    public async Task A_request_hinted_to_a_backend_at_its_cap_is_answered_429_rather_than_sent_elsewhere()
    {
        using var h = Harness(Capped("a", 1, 1), RoutingHarness.Backend("b", 2));
        using var held = await Hold(h);
        var request = new HttpRequestMessage(HttpMethod.Get, "/");
        request.Options.Set(PriorityRoutingRequestOptions.Hints, new PriorityRoutingHints { OnlyBackends = ["a"] });

        using var hinted = await h.Client.SendAsync(request);

        hinted.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        hinted.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(1));
        h.Transport.Hosts.Should().Equal("a");
    }

    [Fact]
    public async Task A_soft_affinity_key_whose_backend_is_at_its_cap_is_served_by_another_backend_of_the_tier()
    {
        using var h = Harness(Capped("a", 1, 1), RoutingHarness.Backend("b", 1));
        using var keyed = await h.Client.SendAsync(WithKey("session-1"), HttpCompletionOption.ResponseHeadersRead);

        using var whileHeld = await h.Client.SendAsync(WithKey("session-1"), HttpCompletionOption.ResponseHeadersRead);

        h.Transport.Hosts.Should().Equal(["a", "b"], "the key's backend is at its cap: the preference yields, the request is not refused");

        static HttpRequestMessage WithKey(string key)
        {
            var request = new HttpRequestMessage(HttpMethod.Get, "/");
            request.Options.Set(PriorityRoutingRequestOptions.Hints, new PriorityRoutingHints { AffinityKey = key });
            return request;
        }
    }

    [Fact]
    public void A_slot_is_given_back_once_by_whichever_owner_ends_it()
    {
        var counter = new InFlightCounter();
        var limit = new InFlightLimit(counter, 1);
        var slot = limit.TryEnter()!;
        limit.TryEnter().Should().BeNull();

        slot.HandToBody();
        slot.EndAttempt();
        counter.Count.Should().Be(1, "the body took the slot: the attempt's end does not give it back");
        slot.Dispose();
        slot.Dispose();
        counter.Count.Should().Be(0);

        var attemptOnly = limit.TryEnter()!;
        attemptOnly.EndAttempt();
        attemptOnly.Dispose();
        counter.Count.Should().Be(0);
    }

    [Fact]
    public void Concurrent_entries_never_exceed_the_cap()
    {
        var counter = new InFlightCounter();
        var admitted = 0;
        Parallel.For(0, 10_000, _ =>
        {
            if (counter.TryEnter(3))
            {
                Interlocked.Increment(ref admitted);
            }
        });

        admitted.Should().Be(3);
        counter.Count.Should().Be(3);
    }

    private static bool Admit(BackendPool pool, RequestRoute route)
    {
        var tried = new BackendSet(2);
        var admitted = pool.TryAcquire(ref tried, route, out var lease);
        lease.Dispose();
        return admitted;
    }

    private static async Task<HttpResponseMessage> Hold(RoutingHarness h)
        => await h.Client.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/"), HttpCompletionOption.ResponseHeadersRead);

    private static HttpRequestMessage Background()
    {
        var request = new HttpRequestMessage(HttpMethod.Get, "/");
        request.Options.Set(PriorityRoutingRequestOptions.Hints, new PriorityRoutingHints { Background = true });
        return request;
    }

    private static PriorityBackend Capped(string name, int priority, int cap)
    {
        var backend = RoutingHarness.Backend(name, priority);
        backend.MaxConcurrentRequests = cap;
        return backend;
    }

    private static RoutingHarness Harness(params PriorityBackend[] backends) => new(o => o.Randomizer = _ => 0, backends);
}
