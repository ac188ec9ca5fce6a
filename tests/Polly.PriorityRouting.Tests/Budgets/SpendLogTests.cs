namespace Polly.PriorityRouting.Tests.Budgets;

public class SpendLogTests
{
    [Fact]
    public void An_answer_drops_the_spends_sent_up_to_its_attempt_and_keeps_the_later_ones()
    {
        var log = new SpendLog();
        log.Add(1, 100);
        log.Add(2, 200);
        log.Add(3, 400);

        log.DropUpTo(2);

        log.Total.Should().Be(400);
    }

    [Fact]
    public void A_full_log_keeps_every_spend_counted_for_longer_never_shorter()
    {
        var log = new SpendLog();
        for (var i = 0; i < SpendLog.Capacity + 10; i++)
        {
            log.Add(i + 1, 1);
        }

        log.Total.Should().Be(SpendLog.Capacity + 10, "folding the oldest loses no cost");

        // The first 11 spends (tickets 1 … 11) were folded into one with ticket 11: dropping up to 10 frees none of them.
        log.DropUpTo(10);
        log.Total.Should().Be(SpendLog.Capacity + 10);

        log.DropUpTo(11);
        log.Total.Should().Be(SpendLog.Capacity - 1);
    }

    [Fact]
    public void A_refill_forgives_the_oldest_spends_up_to_its_amount_and_only_those_it_may_pay()
    {
        var log = new SpendLog();
        log.Add(1, 100);
        log.Add(2, 200);
        log.Add(3, 400);

        log.Forgive(250, ticket: 2);
        log.Total.Should().Be(450, "100 of the first and 150 of the second");
        log.LatestTicket.Should().Be(3);

        log.Forgive(1000, ticket: 2);
        log.Total.Should().Be(400, "a spend after the ticket is not the refill's to pay");

        log.DropUpTo(2);
        log.Total.Should().Be(400, "the partly forgiven spend is gone, the later one stays");
        log.Forgive(1000, long.MaxValue);
        log.Total.Should().Be(0);
        log.LatestTicket.Should().Be(0);
    }
}
