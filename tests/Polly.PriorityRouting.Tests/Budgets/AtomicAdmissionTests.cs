using System.Globalization;
using System.Net;
using Microsoft.Extensions.Time.Testing;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Budgets;

/// <summary>Admission takes a request's cost off the budget in the same step as it checks it.</summary>
public class AtomicAdmissionTests
{
    [Fact]
    public async Task Concurrent_requests_are_admitted_on_the_room_there_is_and_not_one_more()
    {
        const int Threads = 8;
        const int Room = 3;
        const long Cost = 100;

        // The choice within the tier is made after the budget was read: every thread stops there until all have read
        // it, which is the interleaving that admitted all eight on room for three.
        using var chosen = new Barrier(Threads);
        var time = new FakeTimeProvider(RoutingHarness.Start);
        var store = new InMemoryBackendStateStore();
        var options = new PriorityRoutingStrategyOptions
        {
            Backends = { RoutingHarness.Backend("a", 1) },
            StateStore = store,
            Randomizer = _ =>
            {
                chosen.SignalAndWait(TimeSpan.FromSeconds(30)).Should().BeTrue("all threads read the budget");
                return 0;
            },
        };
        var pool = new BackendPool(options, new SharedBackendState(store), time);
        var route = new RequestRoute(null, cost: Cost);
        using var answer = new HttpResponseMessage(HttpStatusCode.OK);
        answer.Headers.TryAddWithoutValidation("x-ratelimit-remaining-tokens", (Room * Cost).ToString(CultureInfo.InvariantCulture));
        answer.Headers.TryAddWithoutValidation("x-ratelimit-reset-tokens", "10s");
        await pool.ObserveBudgetAsync(new BackendLease(pool.Backends[0], null, 0, 0), answer, route, time.GetTimestamp(), default);

        var admitted = 0;
        var threads = Enumerable.Range(0, Threads).Select(_ => new Thread(() =>
        {
            var tried = new BackendSet(1);
            if (pool.TryAcquire(ref tried, route, out var lease))
            {
                lease.Dispose();
                Interlocked.Increment(ref admitted);
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());

        admitted.Should().Be(Room, "room for three requests admits exactly three, whatever the interleaving");
    }
}
