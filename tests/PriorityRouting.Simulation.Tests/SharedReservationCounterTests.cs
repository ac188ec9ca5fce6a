using PriorityRouting.Simulation.Routers;

namespace PriorityRouting.Simulation.Tests;

public class SharedReservationCounterTests
{
    private static readonly DateTimeOffset Start = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    [Fact]
    public void A_window_refills_when_the_backend_refills_not_when_its_longest_reported_reset_delay_says()
    {
        // A backend refilled every 10 s at 10 s and 20 s; the first request of each window came 20-30 ms after the
        // refill, so no answer ever reports a reset delay of a full 10 s.
        var counter = new SharedReservationCounter();
        Reserve(counter, Start.AddMilliseconds(20), 1_000).Should().BeTrue();
        counter.Correct("ptu", remaining: 199_000, limit: 200_000, TimeSpan.FromMilliseconds(9_980), Start.AddMilliseconds(20), Start.AddMilliseconds(20), Start.AddSeconds(0.5), Start.AddSeconds(0.5));
        Reserve(counter, Start.AddMilliseconds(10_030), 1_000).Should().BeTrue();
        counter.Correct("ptu", remaining: 199_000, limit: 200_000, TimeSpan.FromMilliseconds(9_970), Start.AddMilliseconds(10_030), Start.AddMilliseconds(10_030), Start.AddSeconds(10.5), Start.AddSeconds(10.5));
        Reserve(counter, Start.AddSeconds(20.5), 199_000).Should().BeTrue();

        // The window that began at 20 s ends at 30 s: at 29.98 s it still has only 1,000 left.
        Reserve(counter, Start.AddMilliseconds(29_980), 5_000).Should().BeFalse();
        counter.TryGetAvailable("ptu", Start.AddMilliseconds(29_980), out var available, out var resetAt).Should().BeTrue();
        (available, resetAt).Should().Be((1_000L, Start.AddSeconds(30)));
        Reserve(counter, Start.AddSeconds(30), 5_000).Should().BeTrue();
    }

    [Fact]
    public void A_late_answer_keeps_what_was_reserved_after_it_was_sent()
    {
        var counter = new SharedReservationCounter();
        Reserve(counter, Start, 1_000).Should().BeTrue();
        counter.Correct("ptu", remaining: 9_000, limit: 10_000, TimeSpan.FromSeconds(10), Start, Start, Start, Start);
        Reserve(counter, Start.AddSeconds(1), 4_000).Should().BeTrue();

        // The first request's answer arrives 5 s after its admission, reporting what the backend had left then.
        counter.Correct("ptu", remaining: 9_000, limit: 10_000, TimeSpan.FromSeconds(10), Start, Start, Start.AddSeconds(5), Start.AddSeconds(5));

        counter.TryGetAvailable("ptu", Start.AddSeconds(5), out var available, out _).Should().BeTrue();
        available.Should().Be(5_000, "1,000 spent when it was admitted, 4,000 reserved since");
        Reserve(counter, Start.AddSeconds(5), 5_001).Should().BeFalse();
    }

    [Fact]
    public void Nothing_known_admits_everything()
    {
        var counter = new SharedReservationCounter();

        Reserve(counter, Start, 1_000_000).Should().BeTrue();
        counter.TryGetAvailable("ptu", Start, out _, out _).Should().BeFalse();
        counter.Refused.Should().Be(0);
    }

    private static bool Reserve(SharedReservationCounter counter, DateTimeOffset now, long cost) => counter.TryReserve("ptu", cost, now, out _);
}
