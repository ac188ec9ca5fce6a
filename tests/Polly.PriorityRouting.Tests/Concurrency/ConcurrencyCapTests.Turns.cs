using System.Net;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Concurrency;

/// <summary>
/// A foreground request's turn at the slots it waited for (<see cref="SlotTurn"/>) meeting shared reservations, an
/// options reload, hints and <see cref="PriorityRoutingHints.NoFailover"/>.
/// </summary>
public partial class ConcurrencyCapTests
{
    private static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_foreground_request_woken_for_a_slot_keeps_its_turn_while_its_shared_reservation_travels_and_is_sent_before_a_background_one()
    {
        var time = new TimerCountingTimeProvider(RoutingHarness.Start);
        var store = new TravellingReservations();
        using var h = new RoutingHarness(o => { o.Randomizer = _ => 0; o.StateStore = store.Store; o.MaxQueueWait = TimeSpan.FromSeconds(5); }, null, time, Capped("a", 1, 2));

        await TheForegroundsTurnOutlastsItsTravellingReservationAsync(time, store, h, h);

        CallersOf(h).Should().Equal("hold 1", "hold 2", "fg", "bg");
    }

    [Fact]
    public async Task A_background_request_waiting_in_the_pipeline_before_a_reload_does_not_take_a_slot_while_a_foreground_request_of_the_reloaded_pipeline_has_its_turn()
    {
        // A reload builds a new pipeline over the same store: the slots, and the foreground's turns at them, are the store's.
        var time = new TimerCountingTimeProvider(RoutingHarness.Start);
        var store = new TravellingReservations();
        using var before = new RoutingHarness(o => { o.Randomizer = _ => 0; o.StateStore = store.Store; o.MaxQueueWait = TimeSpan.FromSeconds(5); }, null, time, Capped("a", 1, 2));
        using var after = new RoutingHarness(o => { o.Randomizer = _ => 0; o.StateStore = store.Store; o.MaxQueueWait = TimeSpan.FromSeconds(5); }, null, time, Capped("a", 1, 2));

        await TheForegroundsTurnOutlastsItsTravellingReservationAsync(time, store, before, after);

        (CallersOf(before), CallersOf(after)).Should().BeEquivalentTo((new[] { "hold 1", "hold 2", "bg" }, new[] { "fg" }));
    }

    /// <summary>
    /// a (cap 2) holds two requests of <paramref name="background"/>'s pipeline, which then sends a background request
    /// and <paramref name="foreground"/>'s a foreground one; both wait. The first slot given back goes to the foreground
    /// request, whose reservation then travels while the second slot is given back: the background request stays
    /// waiting until the foreground's admission is decided, and is sent after it.
    /// </summary>
    private static async Task TheForegroundsTurnOutlastsItsTravellingReservationAsync(TimerCountingTimeProvider time, TravellingReservations store, RoutingHarness background, RoutingHarness foreground)
    {
        var first = await SendAs(background, "hold 1");
        var second = await SendAs(background, "hold 2");
        var waitingBackground = SendAs(background, "bg", new PriorityRoutingHints { Background = true });
        time.WaitForTimers(1).Should().BeTrue("the background request waits for a slot");
        var waitingForeground = SendAs(foreground, "fg");
        time.WaitForTimers(2).Should().BeTrue("the foreground request waits for a slot");
        waitingForeground.IsCompleted.Should().BeFalse("both of a's slots are held");

        first.Dispose();
        SpinWait.SpinUntil(() => store.Asked == 3, HangGuard).Should().BeTrue("the foreground request took the slot and asked for its reservation");
        second.Dispose();

        // Were the background request woken by the second slot, it would be sent while the foreground's reservation travels.
        SpinWait.SpinUntil(() => background.Transport.Requests.Count > 2, TimeSpan.FromSeconds(1)).Should().BeFalse("the foreground's turn lasts until its admission is decided");
        store.Arrive();
        using var served = await waitingForeground.WaitAsync(HangGuard);
        using var next = await waitingBackground.WaitAsync(HangGuard);

        (served.StatusCode, next.StatusCode).Should().Be((HttpStatusCode.OK, HttpStatusCode.OK));
        store.Store.Reserved.Should().HaveCount(4);
    }

    [Fact]
    public async Task After_a_reload_lowers_MaxConcurrentRequests_a_waiting_request_is_sent_only_once_the_old_pipelines_requests_leave_room_under_the_new_cap()
    {
        var time = new TimerCountingTimeProvider(RoutingHarness.Start);
        using var before = new RoutingHarness(o => { o.Randomizer = _ => 0; o.MaxQueueWait = TimeSpan.FromSeconds(5); }, null, time, Capped("a", 1, 2));
        using var after = new RoutingHarness(o => { o.Randomizer = _ => 0; o.MaxQueueWait = TimeSpan.FromSeconds(5); o.StateStore = before.Store; }, null, time, Capped("a", 1, 1));
        var first = await SendAs(before, "hold 1");
        var second = await SendAs(before, "hold 2");
        var waiting = SendAs(after, "fg");
        time.WaitForTimers(1).Should().BeTrue("the reloaded pipeline's request waits for a slot under its cap of 1");

        first.Dispose();
        time.WaitForTimers(2).Should().BeTrue("one request still in flight fills the new cap: the request waits again");
        waiting.IsCompleted.Should().BeFalse();
        second.Dispose();
        using var served = await waiting.WaitAsync(HangGuard);

        served.StatusCode.Should().Be(HttpStatusCode.OK);
        (CallersOf(before), CallersOf(after)).Should().BeEquivalentTo((new[] { "hold 1", "hold 2" }, new[] { "fg" }));
    }

    [Fact]
    public async Task A_slot_given_back_on_a_backend_a_hinted_foreground_waiter_may_not_use_goes_to_a_background_waiter_at_once()
    {
        var time = new TimerCountingTimeProvider(RoutingHarness.Start);
        using var h = new RoutingHarness(o => { o.Randomizer = _ => 0; o.MaxQueueWait = TimeSpan.FromSeconds(5); }, null, time, Capped("a", 1, 1), Capped("b", 1, 1));
        var onA = await SendAs(h, "hold a", new PriorityRoutingHints { OnlyBackends = ["a"] });
        var onB = await SendAs(h, "hold b", new PriorityRoutingHints { OnlyBackends = ["b"] });
        var background = SendAs(h, "bg", new PriorityRoutingHints { Background = true });
        time.WaitForTimers(1).Should().BeTrue("the background request waits for a slot on a or b");
        var foreground = SendAs(h, "fg", new PriorityRoutingHints { OnlyBackends = ["b"] });
        time.WaitForTimers(2).Should().BeTrue("the foreground request waits for b's slot");

        onA.Dispose();
        using var next = await background.WaitAsync(HangGuard);

        next.StatusCode.Should().Be(HttpStatusCode.OK, "the foreground request has its turn at b only");
        foreground.IsCompleted.Should().BeFalse();
        onB.Dispose();
        using var served = await foreground.WaitAsync(HangGuard);
        served.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("a", "b", "a", "b");
        CallersOf(h).Should().Equal("hold a", "hold b", "bg", "fg");
    }

    [Fact]
    public async Task A_no_failover_caller_that_waited_for_a_slot_is_sent_once_to_the_backend_that_gave_it_and_its_turn_ends_with_that_admission()
    {
        var time = new TimerCountingTimeProvider(RoutingHarness.Start);
        using var h = new RoutingHarness(o => { o.Randomizer = _ => 0; o.MaxQueueWait = TimeSpan.FromSeconds(5); }, null, time, Capped("a", 1, 1), Capped("b", 1, 1));
        h.Transport.Respond("a", request => new HttpResponseMessage(request.Headers.GetValues("x-caller").Single() == "fg" ? HttpStatusCode.ServiceUnavailable : HttpStatusCode.OK));
        var onA = await SendAs(h, "hold a", new PriorityRoutingHints { OnlyBackends = ["a"] });
        var onB = await SendAs(h, "hold b", new PriorityRoutingHints { OnlyBackends = ["b"] });
        var foreground = SendAs(h, "fg", new PriorityRoutingHints { NoFailover = true });
        time.WaitForTimers(1).Should().BeTrue("the no-failover request waits for a slot on a or b");
        var background = SendAs(h, "bg", new PriorityRoutingHints { Background = true });
        time.WaitForTimers(2).Should().BeTrue("the background request waits for a slot on a or b");

        onA.Dispose();
        using var failed = await foreground.WaitAsync(HangGuard);
        onB.Dispose();
        using var next = await background.WaitAsync(HangGuard);

        failed.StatusCode.Should().Be(HttpStatusCode.ServiceUnavailable, "a failed it and it may go nowhere else");
        failed.Headers.Contains("x-priority-routing-exhausted").Should().BeTrue();
        next.StatusCode.Should().Be(HttpStatusCode.OK, "b's slot went to the background request once the foreground's turn ended");
        h.Transport.Hosts.Should().Equal("a", "b", "a", "b");
        CallersOf(h).Should().Equal("hold a", "hold b", "fg", "bg");
    }

    /// <summary>Sends a request named <paramref name="caller"/> whose response holds its slot until it is disposed.</summary>
    private static Task<HttpResponseMessage> SendAs(RoutingHarness h, string caller, PriorityRoutingHints? hints = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, "/");
        request.Headers.Add("x-caller", caller);
        if (hints is not null)
        {
            request.Options.Set(PriorityRoutingRequestOptions.Hints, hints);
        }

        return h.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
    }

    private static string[] CallersOf(RoutingHarness h) => [.. h.Transport.Requests.Select(r => r.Headers["x-caller"])];

    /// <summary>A shared reservation store whose third reservation travels until <see cref="Arrive"/>; the others are granted at once.</summary>
    private sealed class TravellingReservations
    {
        private readonly TaskCompletionSource _arrived = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _asked;

        public TravellingReservations()
            => Store = new ReservingStore().Answer("a", (key, cost, now, _) => Interlocked.Increment(ref _asked) == 3
                ? new ValueTask<BackendReservation>(_arrived.Task.ContinueWith(_ => BackendReservation.Granted(key, cost, now, 3, 1), TaskScheduler.Default))
                : new(BackendReservation.Granted(key, cost, now, Volatile.Read(ref _asked), 1)));

        public ReservingStore Store { get; }

        public int Asked => Volatile.Read(ref _asked);

        public void Arrive() => _arrived.SetResult();
    }
}
