namespace Polly.PriorityRouting.Tests.Budgets;

/// <summary>
/// The view of a budget refilled continuously (10,000 tokens, 1,000 a second) that this process spends alone, against
/// what the backend holds, on a fake clock: answers report the count as of their admission and arrive out of order.
/// </summary>
public class GradualRefillCounterTests
{
    private const long Limit = 10_000;
    private const double Alone = 1;
    private static readonly DateTimeOffset Start = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void A_late_answer_admitted_before_a_newer_one_does_not_bring_back_the_spends_the_newer_one_counted()
    {
        var counter = LearnedContinuous();

        // Admitted at 0 s: 8,000 less 3,000 leaves 5,000 (full at 5 s); at 1 s: 6,000 less 1,000 leaves 5,000 (full at 6 s).
        counter.Spend(3_000, Start, Alone, ticket: 3);
        counter.Spend(1_000, At(1), Alone, ticket: 4);

        // The newer answer first, at 1.5 s, then the older one, at 2 s.
        counter.Merge(5_000, Limit, At(6), At(1), At(1.5), includedSpends: 4);
        counter.Available(At(1.5), Alone).Should().Be(5_500, "the backend holds 5,000 at 1 s plus 500 refilled since");
        counter.Merge(5_000, Limit, At(5), Start, At(2), includedSpends: 3);

        counter.Available(At(2), Alone).Should().Be(6_000, "the older answer's 5,000 at 0 s did not count the 1,000 sent at 1 s");
    }

    [Fact]
    public void A_request_sent_while_the_count_grows_is_taken_off_and_refilled_after_only_from_its_own_admission()
    {
        var counter = LearnedContinuous();
        counter.Spend(3_000, At(0.5), Alone, ticket: 3);

        counter.Available(At(1), Alone).Should().Be(6_000, "8,000 at 0 s plus 1,000 refilled less the 3,000 sent");
        counter.Available(At(2.1), Alone).Should().Be(7_100, "the count reached the limit at 2 s; the refill pays the spend from then on");
        counter.Available(At(6), Alone).Should().Be(Limit, "the spend is paid by 5 s, and the budget holds no more than its limit");
    }

    [Fact]
    public void A_budget_shared_with_peers_keeps_its_count_until_its_full_moment()
    {
        var counter = LearnedContinuous();

        counter.Available(At(1), 0.5).Should().Be(8_000, "with peers, nobody knows who spends the refill of a reported count");
        counter.Available(At(2), 0.5).Should().Be(5_000, "at its full moment this process assumes its share of the limit");
    }

    /// <summary>Two own answers at 0 s that name different full moments: 9,000 (full at 1 s), then 8,000 (full at 2 s).</summary>
    private static BudgetCounter LearnedContinuous()
    {
        var counter = new BudgetCounter();
        counter.Merge(9_000, Limit, At(1), Start, Start, includedSpends: 1);
        counter.Merge(8_000, Limit, At(2), Start, Start, includedSpends: 2);
        counter.Available(Start, Alone).Should().Be(8_000);
        return counter;
    }

    private static DateTimeOffset At(double seconds) => Start + TimeSpan.FromSeconds(seconds);
}
