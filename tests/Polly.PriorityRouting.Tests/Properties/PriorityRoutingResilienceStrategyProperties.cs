using System.Globalization;
using System.Net;
using CsCheck;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Properties;

/// <summary>
/// One request through the real pipeline (fake clock, in-memory transport) over random backends, random store states
/// and random per-backend outcomes, checked against a model of what the strategy must do.
/// </summary>
public class PriorityRoutingResilienceStrategyProperties
{
    private static readonly TimeSpan DefaultCooldown = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan MaxCooldown = TimeSpan.FromSeconds(60);

    private static readonly Gen<Behaviour> Behaviours = Gen.Frequency(
        (3, Gen.OneOf(200, 400, 404).Select(s => new Behaviour(s, null, null))),
        (3, Gen.Int[0, 120_000].Select(ms => new Behaviour(429, ("retry-after-ms", ms.ToString(CultureInfo.InvariantCulture)), TimeSpan.FromMilliseconds(ms)))),
        (1, Gen.Const(new Behaviour(429, null, null))),
        (2, Gen.OneOf(500, 502, 503, 408).Select(s => new Behaviour(s, null, null))),
        (1, Gen.Int[0, 90].Select(s => new Behaviour(503, ("Retry-After", s.ToString(CultureInfo.InvariantCulture)), TimeSpan.FromSeconds(s)))),
        (1, Gen.Const(new Behaviour(-1, null, null))),
        (1, Gen.Const(new Behaviour(-2, null, null))));

    private static readonly Gen<BackendCase> Backend = Gen.Select(
        Gen.Int[1, 3],
        Gen.Int[1, 5],
        Gen.Frequency(
            (3, Gen.Const(default(TimeSpan?))),
            (1, Gen.Int[-30, 30].Select(s => (TimeSpan?)TimeSpan.FromSeconds(s)))),
        Gen.Bool,
        Behaviours)
        .Select((priority, weight, deadline, throttled, behaviour) => new BackendCase(priority, weight, deadline, throttled, behaviour));

    [Fact]
    public void One_request_follows_the_model()
    {
        Gen.Select(Backend.Array[1, 8], Gen.Int).Sample(
            (cases, seed) =>
            {
                var backends = cases.Select((c, i) => RoutingHarness.Backend("h" + i, c.Priority, c.Weight)).ToArray();
                var random = new Random(seed);
                using var h = new RoutingHarness(
                    o =>
                    {
                        o.Randomizer = random.Next;
                        o.DefaultCooldown = DefaultCooldown;
                        o.MaxCooldown = MaxCooldown;
                    },
                    backends);
                var now = h.Time.GetUtcNow();
                var before = new Dictionary<string, BackendUnavailability>();
                for (var i = 0; i < cases.Length; i++)
                {
                    if (cases[i].Deadline is { } offset)
                    {
                        var state = new BackendUnavailability(now + offset, cases[i].Throttled ? BackendUnavailableReason.Throttled : BackendUnavailableReason.ServerError);
                        h.Store.MarkUnavailableAsync(RoutingHarness.Key("h" + i), state, now, default).AsTask().GetAwaiter().GetResult();
                        before["h" + i] = state;
                    }

                    var behaviour = cases[i].Behaviour;
                    var name = "h" + i;
                    if (behaviour.Status == -1)
                    {
                        h.Transport.Throw("h" + i, new HttpRequestException("reset"));
                    }
                    else if (behaviour.Status == -2)
                    {
                        h.Transport.Throw("h" + i, new TaskCanceledException("attempt timed out"));
                    }
                    else
                    {
                        h.Transport.Respond("h" + i, _ =>
                        {
                            var response = new HttpResponseMessage((HttpStatusCode)behaviour.Status) { Content = new DisposeTrackingContent(name) };
                            if (behaviour.Header is { } header)
                            {
                                response.Headers.TryAddWithoutValidation(header.Name, header.Value);
                            }

                            return response;
                        });
                    }
                }

                using var answer = h.Client.GetAsync("/").GetAwaiter().GetResult();
                var called = h.Transport.Hosts;

                var available = new Func<int, bool>(i => !before.TryGetValue("h" + i, out var s) || !s.IsActiveAt(now));
                var handled = new Func<Behaviour, bool>(b => b.Status is -1 or -2 or 429 or 408 or >= 500);
                var index = called.Select(n => int.Parse(n.AsSpan(1), CultureInfo.InvariantCulture)).ToArray();

                called.Should().OnlyHaveUniqueItems("a backend is never tried twice in one execution");
                index.All(available).Should().BeTrue("an unavailable backend is never called");
                index.Select(i => cases[i].Priority).Should().BeInAscendingOrder("tiers are taken best first");
                index.SkipLast(1).All(i => handled(cases[i].Behaviour)).Should().BeTrue("only a handled outcome moves on");

                // The discarded answers were disposed; the returned one was not.
                var returned = answer.Headers.Contains("x-priority-routing-exhausted") ? null : answer;
                lock (h.Transport.Responses)
                {
                    foreach (var response in h.Transport.Responses.Where(r => r != returned))
                    {
                        ((DisposeTrackingContent)response.Content).IsDisposed.Should().BeTrue();
                    }
                }

                // Every handled backend is marked with max(previous deadline, now + its cooldown).
                foreach (var i in index.Where(i => handled(cases[i].Behaviour)))
                {
                    var expected = now + (cases[i].Behaviour.Cooldown is { } c ? (c > MaxCooldown ? MaxCooldown : c) : DefaultCooldown);
                    if (before.TryGetValue("h" + i, out var old) && old.Until > expected)
                    {
                        expected = old.Until;
                    }

                    // Within one tick below: the parser turns milliseconds into ticks through a double and truncates
                    // (33907 ms becomes 33.9069999 s), which is harmless and reported, not hidden.
                    if (h.StateOf("h" + i) is not { } state)
                    {
                        // The store sweeps entries that are already over (a "Retry-After: 0") on a write.
                        expected.Should().BeOnOrBefore(now);
                        continue;
                    }

                    state.Until.Should().BeOnOrBefore(expected).And.BeOnOrAfter(expected.AddTicks(-1));
                }

                if (returned is not null)
                {
                    handled(cases[index[^1]].Behaviour).Should().BeFalse();
                    ((int)returned.StatusCode).Should().Be(cases[index[^1]].Behaviour.Status);
                    return;
                }

                // Exhausted: every backend that was available was tried, and each failed.
                index.Should().BeEquivalentTo(Enumerable.Range(0, cases.Length).Where(available));
                index.All(i => handled(cases[i].Behaviour)).Should().BeTrue("the exhausted answer comes only after failures");
                var states = Enumerable.Range(0, cases.Length).Select(i => h.StateOf("h" + i)).ToArray();
                var soonest = states.Any(s => s is null || !s.Value.IsActiveAt(now))
                    ? TimeSpan.Zero
                    : states.Min(s => s!.Value.Until - now);
                var throttled = states.Any(s => s is { } v && v.IsActiveAt(now) && v.Reason == BackendUnavailableReason.Throttled) ||
                                index.Any(i => cases[i].Behaviour.Status == 429 || cases[i].Behaviour.Header is not null);
                answer.StatusCode.Should().Be(throttled ? HttpStatusCode.TooManyRequests : HttpStatusCode.ServiceUnavailable);
                answer.Headers.GetValues("retry-after-ms").Single().Should().Be(
                    (soonest == TimeSpan.Zero ? 0 : (long)Math.Ceiling(soonest.TotalMilliseconds) + ExhaustedResponse.TimerSlackMilliseconds).ToString(CultureInfo.InvariantCulture));
                answer.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(Math.Ceiling(soonest.TotalSeconds)));
            },
            iter: 3_000,
            print: sample => $"seed={sample.Item2} " + string.Join(", ", sample.Item1.Select((c, i) => $"h{i}:{c}")));
    }

    private sealed record Behaviour(int Status, (string Name, string Value)? Header, TimeSpan? Cooldown)
    {
        public override string ToString() => Status switch
        {
            -1 => "reset",
            -2 => "timeout",
            _ => Header is { } h ? $"{Status} {h.Name}: {h.Value}" : Status.ToString(CultureInfo.InvariantCulture),
        };
    }

    private sealed record BackendCase(int Priority, int Weight, TimeSpan? Deadline, bool Throttled, Behaviour Behaviour)
    {
        public override string ToString()
            => $"p{Priority} w{Weight}{(Deadline is { } d ? $" until {d.TotalSeconds:+0;-0;0}s{(Throttled ? " throttled" : string.Empty)}" : string.Empty)} -> {Behaviour}";
    }
}
