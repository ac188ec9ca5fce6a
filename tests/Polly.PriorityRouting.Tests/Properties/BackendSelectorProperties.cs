using CsCheck;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Properties;

/// <summary>
/// Properties of <see cref="BackendSelector.SelectNext"/> over random backend sets (1..100 backends, so both the
/// 64-bit mask and the array of <see cref="BackendSet"/> are used), random tiers, weights, tried sets and store
/// states (none, active, expired, expiring exactly now).
/// </summary>
public class BackendSelectorProperties
{
    private static readonly DateTimeOffset Now = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);

    private static readonly Gen<BackendSpec> Backend =
        Gen.Select(
            Gen.Int[1, 5],
            Gen.Frequency((3, Gen.Int[1, 10]), (1, Gen.Int[1, 1000])),
            Gen.Frequency(
                (4, Gen.Const(default(TimeSpan?))),
                (2, Gen.Long[1, TimeSpan.TicksPerMinute].Select(t => (TimeSpan?)TimeSpan.FromTicks(t))),
                (2, Gen.Long[-TimeSpan.TicksPerMinute, -1].Select(t => (TimeSpan?)TimeSpan.FromTicks(t))),
                (1, Gen.Const<TimeSpan?>(TimeSpan.Zero))),
            Gen.Int[0, 9])
        .Select((priority, weight, deadline, triedRoll) => new BackendSpec(priority, weight, deadline, triedRoll == 0));

    private static readonly Gen<(BackendSpec[] Backends, int Seed)> Scenario =
        Gen.Select(Backend.Array[1, 100], Gen.Int);

    [Fact]
    public void Never_picks_an_unavailable_or_tried_backend_nor_a_lower_tier_and_returns_null_only_when_nothing_is_eligible()
    {
        Scenario.Sample(
            (specs, seed) =>
            {
                var random = new Random(seed);
                var (selector, tried, eligible) = Build(specs, random.Next);

                // Walk the whole execution: every step must be a legal pick until nothing is left.
                while (true)
                {
                    var pick = selector.SelectNext(tried, Now);
                    if (pick is null)
                    {
                        eligible.Should().BeEmpty("null means nothing is eligible");
                        break;
                    }

                    eligible.Should().Contain(pick.Index, "the pick must be available and untried");
                    var bestTier = eligible.Min(i => selector.Backends[i].Priority);
                    pick.Priority.Should().Be(bestTier, "a lower tier is never picked while a higher one has a candidate");

                    tried.Add(pick.Index);
                    eligible.Remove(pick.Index);
                }
            },
            iter: 4_000,
            print: Print);
    }

    [Fact]
    public void Hands_out_exactly_the_weights_when_the_randomizer_enumerates_every_value()
    {
        // Tiers of up to 64 backends take one draw in [0, total weight) per choice. Fed each value once, the choice must
        // land on each candidate exactly its weight's times: this catches off-by-one boundaries and skipped candidates
        // without any statistics. (Wider tiers use reservoir sampling: covered by the statistical property and by
        // BackendSelectorTests.Tiers_wider_than_64_follow_the_weights_too.)
        Scenario.Sample(
            (specs, _) =>
            {
                var next = 0;
                var (selector, tried, eligible) = Build(specs, bound => next++ % bound);
                if (eligible.Count == 0)
                {
                    selector.SelectNext(tried, Now).Should().BeNull();
                    return;
                }

                var bestTier = eligible.Min(i => selector.Backends[i].Priority);
                if (selector.Backends.Count(b => b.Priority == bestTier) > 64)
                {
                    return;
                }

                var candidates = eligible.Where(i => selector.Backends[i].Priority == bestTier).ToArray();
                var total = candidates.Sum(i => selector.Backends[i].Weight);
                var counts = new int[selector.Backends.Count];
                for (var draw = 0; draw < total; draw++)
                {
                    counts[selector.SelectNext(tried, Now)!.Index]++;
                }

                next.Should().Be(total, "one draw per selection");
                foreach (var i in candidates)
                {
                    counts[i].Should().Be(selector.Backends[i].Weight, $"backend {selector.Backends[i].Name}");
                }
            },
            iter: 1_000,
            print: Print);
    }

    [Fact]
    public void Follows_the_weights_statistically_with_a_real_random_source()
    {
        // Fixed seeds: the scenarios and the draws are the same on every run, so this cannot flake. The threshold is
        // still honest: it is the chi-square quantile at p = 1e-6, so a correct selector would fail it for fewer than
        // one seed in a million per scenario (2e-5 over the 20 scenarios), while a selector that ignored the weights
        // or shifted a boundary exceeds it by orders of magnitude at 60,000 draws.
        const int Draws = 60_000;
        const int Scenarios = 20;
        var failures = new List<string>();
        var tested = 0;
        for (var k = 0; k < Scenarios; k++)
        {
            var (specs, seed) = Scenario.Generate(new PCG(7, 20261124UL + (ulong)k), null, out _);
            var random = new Random(seed);
            var (selector, tried, eligible) = Build(specs, random.Next);
            if (eligible.Count == 0)
            {
                continue;
            }

            var bestTier = eligible.Min(i => selector.Backends[i].Priority);
            var candidates = eligible.Where(i => selector.Backends[i].Priority == bestTier).ToArray();
            if (candidates.Length < 2)
            {
                continue;
            }

            var total = (double)candidates.Sum(i => selector.Backends[i].Weight);
            var counts = new int[selector.Backends.Count];
            for (var draw = 0; draw < Draws; draw++)
            {
                counts[selector.SelectNext(tried, Now)!.Index]++;
            }

            var (statistic, degrees) = ChiSquare(candidates.Select(i => (counts[i], Draws * selector.Backends[i].Weight / total)));
            if (degrees > 0 && statistic > ChiSquareQuantile(degrees, z: 4.7534))
            {
                failures.Add($"chi2={statistic:F1} dof={degrees} {Print((specs, seed))}");
            }

            tested++;
        }

        tested.Should().BeGreaterThan(Scenarios / 2, "most fixed scenarios must have a tier with several candidates");
        failures.Should().BeEmpty();
    }

    private static (BackendSelector Selector, BackendSet Tried, HashSet<int> Eligible) Build(BackendSpec[] specs, Func<int, int> randomizer)
    {
        var store = new FixedStateStore();
        var backends = new List<PriorityBackend>();
        for (var i = 0; i < specs.Length; i++)
        {
            var name = "b" + i;
            backends.Add(new PriorityBackend { Name = name, BaseAddress = new Uri($"http://{name}/"), Priority = specs[i].Priority, Weight = specs[i].Weight });
            if (specs[i].Deadline is { } offset)
            {
                store.Entries[new BackendStateKey($"{name}@http://{name}")] = new BackendUnavailability(Now + offset, BackendUnavailableReason.Throttled);
            }
        }

        var selector = Selectors.Create(backends, store, randomizer);
        var tried = new BackendSet(specs.Length);
        var eligible = new HashSet<int>();
        foreach (var routed in selector.Backends)
        {
            var spec = specs[int.Parse(routed.Name.AsSpan(1), System.Globalization.CultureInfo.InvariantCulture)];
            if (spec.Tried)
            {
                tried.Add(routed.Index);
            }

            // Available means no entry or a deadline not after now (IsActiveAt is now < Until).
            if (!spec.Tried && (spec.Deadline is not { } deadline || deadline <= TimeSpan.Zero))
            {
                eligible.Add(routed.Index);
            }
        }

        return (selector, tried, eligible);
    }

    /// <summary>Pearson's statistic, merging bins expected below 5 (where the chi-square approximation is poor).</summary>
    private static (double Statistic, int Degrees) ChiSquare(IEnumerable<(int Observed, double Expected)> bins)
    {
        var merged = new List<(double Observed, double Expected)>();
        var small = (Observed: 0.0, Expected: 0.0);
        foreach (var (observed, expected) in bins)
        {
            if (expected < 5)
            {
                small = (small.Observed + observed, small.Expected + expected);
            }
            else
            {
                merged.Add((observed, expected));
            }
        }

        if (small.Expected >= 5)
        {
            merged.Add(small);
        }
        else if (small.Expected > 0 && merged.Count > 0)
        {
            merged[^1] = (merged[^1].Observed + small.Observed, merged[^1].Expected + small.Expected);
        }

        return (merged.Sum(b => (b.Observed - b.Expected) * (b.Observed - b.Expected) / b.Expected), merged.Count - 1);
    }

    /// <summary>Wilson–Hilferty approximation of the chi-square quantile for the standard normal quantile z.</summary>
    private static double ChiSquareQuantile(int degrees, double z)
    {
        var a = 2.0 / (9 * degrees);
        return degrees * Math.Pow(1 - a + (z * Math.Sqrt(a)), 3);
    }

    private static string Print((BackendSpec[] Backends, int Seed) sample)
        => $"seed={sample.Seed} " + string.Join(", ", sample.Backends.Select((b, i) =>
            $"b{i}(p{b.Priority} w{b.Weight}{(b.Deadline is { } d ? $" until {d.TotalMilliseconds:+0.###;-0.###;0}ms" : string.Empty)}{(b.Tried ? " tried" : string.Empty)})"));

    private sealed record BackendSpec(int Priority, int Weight, TimeSpan? Deadline, bool Tried);

    /// <summary>A store that keeps exactly what it is given (expired entries included: no sweeping).</summary>
    private sealed class FixedStateStore : IBackendStateStore
    {
        public Dictionary<BackendStateKey, BackendUnavailability> Entries { get; } = [];

        public bool TryGetUnavailability(BackendStateKey key, out BackendUnavailability unavailability)
            => Entries.TryGetValue(key, out unavailability);

        public ValueTask MarkUnavailableAsync(BackendStateKey key, BackendUnavailability unavailability, DateTimeOffset now, CancellationToken cancellationToken)
            => throw new NotSupportedException("The selector only reads.");

        public IReadOnlyList<KeyValuePair<BackendStateKey, BackendUnavailability>> GetEntries(string backend)
            => throw new NotSupportedException("The selector only reads single entries.");
    }
}
