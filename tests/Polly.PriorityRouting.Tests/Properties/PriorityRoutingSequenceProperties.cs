using System.Globalization;
using System.Net;
using System.Text;
using CsCheck;
using Polly.PriorityRouting.Tests.Support;
using Xunit.Abstractions;

namespace Polly.PriorityRouting.Tests.Properties;

/// <summary>
/// Random sequences of requests (for random Azure OpenAI deployments, or none), waits and backend behaviours through
/// the real pipeline — fake clock, in-memory transport, outlier ejection on, proactive throttling on, partitions by
/// deployment — checked step by step against <see cref="RoutingModel"/>, which is written from the documentation.
/// </summary>
/// <remarks>
/// <para>
/// A request can carry a second request that arrives while one of its attempts is in flight (the transport sends it
/// from inside that attempt, on the same client): that is how a sequence reaches a probe in flight, attempts admitted
/// before an ejection that answer after it, and failures of two requests "in a row" on one backend — deterministically,
/// without threads.
/// </para>
/// <para>
/// Selection: half of the sequences use a randomizer that always answers 0, which by contract picks the first
/// configured candidate of the best tier, and the model predicts every call exactly. The other half use a seeded
/// <see cref="Random"/> (its seed is part of the sample, so a failure replays): the model does not restate the weighted
/// draw — <c>BackendSelectorProperties</c> covers the weights — but checks that each call is one of its legal candidates
/// (untried, in rotation for the request's deployment, best tier) and then follows it.
/// </para>
/// <para>
/// <see cref="PriorityRoutingResilienceStrategyProperties"/> stays: it covers one request over what a sequence does not
/// start from — up to 8 backends, store entries written by someone else (any reason, past or future) — with the real
/// weighted draw.
/// </para>
/// </remarks>
public class PriorityRoutingSequenceProperties(ITestOutputHelper output)
{
    private const string RequestIdHeader = "x-model-request";

    private static readonly TimeSpan MaxCooldown = TimeSpan.FromSeconds(30);

    private static readonly string?[] Deployments = [null, "gpt-4o", "o3-mini"];

    /// <summary>The ejection lengths are written out by hand, n = 1, 2, …; beyond the list, the last (the maximum).</summary>
    private static readonly EjectionCase[] Ejections =
    [
        new("every failure ejects; 2 s base, 4 s max; cooldown 1 s", 1, S(2), S(4), S(1), [S(2), S(4)]),
        new("2 failures in a row; 2 s base, 5 s max; cooldown 1 s", 2, S(2), S(5), S(1), [S(2), S(4), S(5)]),
        new("3 failures in a row; 3 s base, 9 s max; cooldown 4 s", 3, S(3), S(9), S(4), [S(3), S(6), S(9)]),
        new("2 failures in a row; 1.5 s base, 4 s max; cooldown 3 s", 2, Ms(1500), S(4), S(3), [Ms(1500), S(3), S(4)]),
        new("2 failures in a row; 2 s base, 7 s max; cooldown 0", 2, S(2), S(7), TimeSpan.Zero, [S(2), S(4), S(6), S(7)]),
    ];

    private static readonly Gen<int> ThrottleMilliseconds = Gen.Frequency(
        (1, Gen.Const(0)),
        (3, Gen.Int[1, 6000]),
        (3, Gen.OneOf(1000, 2000, 3000, 5000)),
        (1, Gen.Const(45_000)));

    private static readonly Gen<Behaviour> Behaviours = Gen.Select(
        Gen.Frequency(
            (4, Gen.Const((BehaviourKind.Ok, 0, false))),
            (2, Gen.Select(Gen.OneOf(0, 250, 1000, 1500, 2000, 4000), Gen.Bool).Select((ms, tokens) => (BehaviourKind.Spent, ms, tokens))),
            (3, ThrottleMilliseconds.Select(ms => (BehaviourKind.Throttle, ms, false))),
            (1, Gen.Const((BehaviourKind.ThrottleWithoutSignal, 0, false))),
            (1, Gen.Int[0, 4].Select(s => (BehaviourKind.UnavailableRetryAfter, s * 1000, false))),
            (4, Gen.Bool.Select(is503 => (BehaviourKind.ServerError, 0, is503))),
            (2, Gen.Const((BehaviourKind.TransportError, 0, false))),
            (2, Gen.Bool.Select(polly => (BehaviourKind.Timeout, 0, polly))),
            (1, Gen.Const((BehaviourKind.RequestTimeout, 0, false))),
            (1, Gen.Const((BehaviourKind.BadRequest, 0, false)))),
        Gen.Frequency(
            (12, Gen.Const(TimeSpan.Zero)),
            (1, Gen.OneOf(Ms(500), S(1), Ms(2500)))))
        .Select((what, delay) => new Behaviour(what.Item1, what.Item2, what.Item3, delay));

    private static readonly Gen<Step> Steps = Gen.Frequency(
        (5, Gen.Select(
                Gen.Int[0, Deployments.Length - 1],
                Behaviours.Array[4],
                Gen.Frequency(
                    (2, Gen.Const((NestedStep?)null)),
                    (1, Gen.Select(Gen.Frequency((3, Gen.Const(0)), (2, Gen.Const(1)), (1, Gen.Const(2))), Gen.Int[0, Deployments.Length - 1], Behaviours.Array[4])
                        .Select((at, deployment, behaviours) => (NestedStep?)new NestedStep(at, deployment, behaviours)))))
            .Select((deployment, behaviours, nested) => (Step)new RequestStep(deployment, behaviours, nested))),
        (2, Gen.OneOf(Ms(1), Ms(500), Ms(999), S(1), S(2), S(3), Ms(4500), S(10)).Select(by => (Step)new WaitStep(by))));

    private static readonly Gen<Setup> Setups = Gen.Select(
            Gen.Int[0, Ejections.Length - 1],
            Gen.Int[1, 3].Array[2, 4],
            Gen.Int[1, 3].Array[4],
            Gen.Frequency((1, Gen.Const((int?)null)), (1, Gen.Int.Select(seed => (int?)seed))))
        .Select((ejection, priorities, weights, seed) => new Setup(ejection, priorities, weights, seed));

    [Fact]
    public void Request_sequences_follow_the_model()
    {
        var total = new Coverage();
        var runs = 0;
        Gen.Select(Setups, Steps.Array[1, 30]).Sample(
            (setup, steps) =>
            {
                Run(setup, steps, total);
                Interlocked.Increment(ref runs);
            },
            iter: 600,
            print: sample => Print(sample.Item1, sample.Item2));

        output.WriteLine($"{runs} sequences: {total}");
        if (runs < 600)
        {
            // Replaying one seed (CsCheck_Seed) or a shortened run: nothing to say about coverage.
            return;
        }

        // Not vacuous: every mechanism the model describes was reached. Over 600 sequences each is seen 40 to 1,000
        // times (the rarest, an exhausted answer while a probe is in flight, about 45): zero would mean the generators broke.
        total.Ejections.Should().BePositive();
        total.RepeatedEjections.Should().BePositive();
        total.Forgiven.Should().BePositive();
        total.Probes.Should().BePositive();
        total.FailedProbes.Should().BePositive();
        total.ProactiveMarks.Should().BePositive();
        total.PartitionThrottles.Should().BePositive();
        total.Exhausted.Should().BePositive();
        total.StaleVerdicts.Should().BePositive();
        total.NestedDuringProbe.Should().BePositive();
        total.ExhaustedWhileProbing.Should().BePositive();
    }

    private static void Run(Setup setup, Step[] steps, Coverage total)
    {
        var ejection = Ejections[setup.Ejection];
        var names = setup.Priorities.Select((_, i) => "b" + i.ToString(CultureInfo.InvariantCulture)).ToArray();
        var random = setup.Seed is { } seed ? new Random(seed) : null;
        using var h = new RoutingHarness(
            o =>
            {
                o.Randomizer = random is null ? _ => 0 : random.Next;
                o.DefaultCooldown = ejection.DefaultCooldown;
                o.MaxCooldown = MaxCooldown;
                o.ThrottlePartitionKey = ThrottlePartitions.AzureOpenAIDeployment;
                o.ProactiveThrottling = true;

                // The model covers partitions, proactive throttling and ejection; token budgets (on by default since
                // issue 13) spread exhausted answers over refills, which the model does not describe — they have their
                // own tests (BackendBudgetsTests, TokenBudgetAdmissionTests).
                o.TokenBudgets = false;
                o.OutlierEjection = new OutlierEjectionOptions
                {
                    Enabled = true,
                    ConsecutiveFailures = ejection.ConsecutiveFailures,
                    BaseEjectionTime = ejection.BaseEjectionTime,
                    MaxEjectionTime = ejection.MaxEjectionTime,
                };
            },
            [.. names.Select((name, i) => RoutingHarness.Backend(name, setup.Priorities[i], setup.Weights[i]))]);
        var model = new RoutingModel([.. names.Select((name, i) => (name, setup.Priorities[i]))], ejection, MaxCooldown, h.Time.GetUtcNow());
        var backends = new ScriptedBackends(h, names);

        var nextId = 0;
        for (var i = 0; i < steps.Length; i++)
        {
            var where = $"step {(i + 1).ToString(CultureInfo.InvariantCulture)}";
            switch (steps[i])
            {
                case WaitStep wait:
                    h.Time.Advance(wait.By);
                    model.Advance(wait.By);
                    break;

                case RequestStep step:
                    var outerId = ++nextId;
                    var request = new ModelRequest(
                        outerId,
                        Deployments[step.Deployment],
                        step.Behaviours,
                        step.Nested is { } n ? new ModelNested(n.AtAttempt, new ModelRequest(++nextId, Deployments[n.Deployment], n.Behaviours, null)) : null);
                    CheckRequest(where, h, model, backends, request, chooseFirst: random is null);
                    break;
            }

            Check(model.Now == h.Time.GetUtcNow(), where, "the model's clock and the fake clock agree", model);
            CheckStore(where, h, model, names);
        }

        model.Seen.AddTo(total);
    }

    private static void CheckRequest(string where, RoutingHarness h, RoutingModel model, ScriptedBackends backends, ModelRequest request, bool chooseFirst)
    {
        backends.Send(request);

        var expected = new Dictionary<int, ExpectedTrace>();
        model.Play(
            request,
            (r, attempt, legal) =>
            {
                var calls = backends.Observed.TryGetValue(r.Id, out var o) ? o.Calls : [];
                if (chooseFirst)
                {
                    return legal[0];
                }

                Check(attempt < calls.Count, where, $"request #{r.Id}: the model expects attempt {attempt + 1} on one of [{string.Join(", ", legal)}], the pipeline made {calls.Count}", model);
                Check(legal.Contains(calls[attempt]), where, $"request #{r.Id}: attempt {attempt + 1} went to {calls[attempt]}, the legal candidates were [{string.Join(", ", legal)}]", model);
                return calls[attempt];
            },
            expected);

        foreach (var (id, trace) in expected.OrderBy(e => e.Key))
        {
            var who = $"request #{id.ToString(CultureInfo.InvariantCulture)}";
            Check(backends.Observed.TryGetValue(id, out var actual), where, $"{who} was sent (it arrives during an attempt of its outer request)", model);
            Check(
                actual!.Calls.SequenceEqual(trace.Calls),
                where,
                $"{who}: expected calls [{string.Join(", ", trace.Calls)}], the pipeline called [{string.Join(", ", actual.Calls)}]",
                model);
            CheckAnswer(where, who, trace.Answer!, actual, model);
        }

        Check(
            backends.Observed.Keys.All(expected.ContainsKey),
            where,
            $"the pipeline sent no request the model did not (sent: {string.Join(", ", backends.Observed.Keys)})",
            model);
        backends.Observed.Clear();
    }

    private static void CheckAnswer(string where, string who, ExpectedAnswer expected, Observed actual, RoutingModel model)
    {
        var what = $"{who}: expected {expected}, got {actual}";
        Check(actual.Exhausted == expected.IsExhausted, where, what, model);
        Check(actual.Status == expected.Status, where, what, model);
        if (expected.IsExhausted)
        {
            Check(actual.RetryAfterSeconds == expected.RetryAfterSeconds, where, what, model);
            Check(actual.RetryAfterMilliseconds == expected.RetryAfterMilliseconds, where, what, model);
            Check(
                actual.Body.Contains(expected.Status == 429 ? "all_backends_throttled" : "all_backends_unavailable", StringComparison.Ordinal),
                where,
                $"{what}; body {actual.Body}",
                model);
        }
        else
        {
            Check(actual.IsLastBackendAnswer, where, $"{who}: the caller gets the very answer of the last backend called, untouched", model);
            Check(actual.Body == $"{expected.Backend}#{who[(who.IndexOf('#', StringComparison.Ordinal) + 1)..]}", where, $"{what}; body {actual.Body}", model);
            Check(!actual.ReturnedDisposedEarly, where, $"{who}: the returned answer must not be disposed by the pipeline", model);
        }

        Check(
            actual.UndisposedDiscarded.Count == 0,
            where,
            $"{who}: discarded answers of [{string.Join(", ", actual.UndisposedDiscarded)}] were not disposed",
            model);
        Check(actual.WrongUris.Count == 0, where, $"{who}: attempts went to wrong URIs: {string.Join(", ", actual.WrongUris)}", model);
    }

    private static void CheckStore(string where, RoutingHarness h, RoutingModel model, string[] names)
    {
        var now = h.Time.GetUtcNow();
        foreach (var name in names)
        {
            foreach (var partition in Deployments)
            {
                var stored = h.Store.TryGetUnavailability(RoutingHarness.Key(name, partition), out var state) && state.IsActiveAt(now)
                    ? new Mark(state.Until, state.Reason)
                    : null;
                var expected = model.ActiveMark(name, partition);
                Check(
                    stored == expected,
                    where,
                    $"store entry of {name}{(partition is null ? string.Empty : " [" + partition + "]")}: expected {Show(expected, model)}, the store holds {Show(stored, model)}",
                    model);
            }
        }
    }

    private static string Show(Mark? mark, RoutingModel model)
        => mark is null ? "nothing active" : $"{mark.Reason} until {RoutingModel.Show(mark.Until - model.Start)}";

    private static void Check(bool condition, string where, string what, RoutingModel model)
    {
        if (!condition)
        {
            throw new InvalidOperationException($"{where}: {what}\n{model.Describe()}");
        }
    }

    private static string Print(Setup setup, Step[] steps)
    {
        var count = setup.Priorities.Length;
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"\n  ejection: {Ejections[setup.Ejection]}; selection: {(setup.Seed is { } s ? "seeded " + s.ToString(CultureInfo.InvariantCulture) : "first candidate")}");
        text.Append("\n  backends: ").AppendJoin(", ", setup.Priorities.Select((p, i) => $"b{i} p{p} w{setup.Weights[i]}"));
        var id = 0;
        for (var i = 0; i < steps.Length; i++)
        {
            text.Append(CultureInfo.InvariantCulture, $"\n  step {i + 1}: ");
            switch (steps[i])
            {
                case WaitStep wait:
                    text.Append("wait ").Append(RoutingModel.Show(wait.By)[1..]);
                    break;
                case RequestStep request:
                    text.Append(Describe(++id, request.Deployment, request.Behaviours, count));
                    if (request.Nested is { } nested)
                    {
                        text.Append(CultureInfo.InvariantCulture, $"\n          during its attempt {nested.AtAttempt + 1}: ")
                            .Append(Describe(++id, nested.Deployment, nested.Behaviours, count));
                    }

                    break;
            }
        }

        return text.ToString();
    }

    private static string Describe(int id, int deployment, Behaviour[] behaviours, int count)
        => $"request #{id} {Deployments[deployment] ?? "(no deployment)"}: " + string.Join(" | ", behaviours.Take(count).Select((b, i) => $"b{i} {b}"));

    private static TimeSpan S(double seconds) => TimeSpan.FromSeconds(seconds);

    private static TimeSpan Ms(int milliseconds) => TimeSpan.FromMilliseconds(milliseconds);

    private sealed record Setup(int Ejection, int[] Priorities, int[] Weights, int? Seed);

    private abstract record Step;

    private sealed record WaitStep(TimeSpan By) : Step;

    private sealed record RequestStep(int Deployment, Behaviour[] Behaviours, NestedStep? Nested) : Step;

    private sealed record NestedStep(int AtAttempt, int Deployment, Behaviour[] Behaviours);

    /// <summary>What the pipeline did with one request, read before its answer is disposed.</summary>
    private sealed record Observed(
        List<string> Calls,
        bool Exhausted,
        int Status,
        long RetryAfterSeconds,
        long RetryAfterMilliseconds,
        string Body,
        bool IsLastBackendAnswer,
        bool ReturnedDisposedEarly,
        List<string> UndisposedDiscarded,
        List<string> WrongUris)
    {
        public override string ToString() => Exhausted
            ? $"exhausted {Status} Retry-After: {RetryAfterSeconds}, retry-after-ms: {RetryAfterMilliseconds}"
            : $"{Status} ({Body})";
    }

    /// <summary>
    /// The backends' side: answers each attempt with the behaviour its request scripted for that backend, moves the
    /// fake clock by the behaviour's delay, and sends a nested request from inside the attempt that carries one.
    /// </summary>
    private sealed class ScriptedBackends
    {
        private readonly RoutingHarness _h;
        private readonly Dictionary<int, Live> _live = [];

        public ScriptedBackends(RoutingHarness h, string[] names)
        {
            _h = h;
            foreach (var name in names)
            {
                var index = Array.IndexOf(names, name);
                h.Transport.Respond(name, message => Answer(name, index, message));
            }
        }

        public Dictionary<int, Observed> Observed { get; } = [];

        public void Send(ModelRequest request)
        {
            var live = new Live(request);
            _live[request.Id] = live;
            using var message = new HttpRequestMessage(HttpMethod.Get, Path(request.Partition));
            message.Headers.Add(RequestIdHeader, request.Id.ToString(CultureInfo.InvariantCulture));
            var answer = _h.Client.SendAsync(message).GetAwaiter().GetResult();
            try
            {
                var exhausted = answer.Headers.TryGetValues("x-priority-routing-exhausted", out var flag) && flag.Single() == "true";
                var ms = answer.Headers.TryGetValues("retry-after-ms", out var values) ? long.Parse(values.Single(), CultureInfo.InvariantCulture) : -1;
                var observed = new Observed(
                    live.Calls,
                    exhausted,
                    (int)answer.StatusCode,
                    answer.Headers.RetryAfter?.Delta is { } delta ? (long)delta.TotalSeconds : -1,
                    ms,
                    answer.Content.ReadAsStringAsync().GetAwaiter().GetResult(),
                    live.Responses.Count > 0 && ReferenceEquals(live.Responses[^1].Response, answer),
                    answer.Content is DisposeTrackingContent { IsDisposed: true },
                    [.. live.Responses.Where(r => !ReferenceEquals(r.Response, answer) && !((DisposeTrackingContent)r.Response.Content).IsDisposed).Select(r => r.Backend)],
                    live.WrongUris);
                Observed[request.Id] = observed;
            }
            finally
            {
                answer.Dispose();
                _live.Remove(request.Id);
            }
        }

        private static string Path(string? partition)
            => partition is null ? "/v1/chat/completions" : $"/openai/deployments/{partition}/chat/completions";

        private HttpResponseMessage Answer(string name, int index, HttpRequestMessage message)
        {
            var live = _live[int.Parse(message.Headers.GetValues(RequestIdHeader).Single(), CultureInfo.InvariantCulture)];
            var attempt = live.Calls.Count;
            live.Calls.Add(name);
            var expectedUri = new Uri($"http://{name}{Path(live.Request.Partition)}");
            if (message.RequestUri != expectedUri)
            {
                live.WrongUris.Add(message.RequestUri?.ToString() ?? "(none)");
            }

            if (live.Request.Nested is { } nested && nested.AtAttempt == attempt)
            {
                Send(nested.Request);
            }

            var behaviour = live.Request.Behaviours[index];
            if (behaviour.Delay > TimeSpan.Zero)
            {
                _h.Time.Advance(behaviour.Delay);
            }

            var response = behaviour.Answer($"{name}#{live.Request.Id.ToString(CultureInfo.InvariantCulture)}");
            live.Responses.Add((name, response));
            return response;
        }

        private sealed class Live(ModelRequest request)
        {
            public ModelRequest Request { get; } = request;

            public List<string> Calls { get; } = [];

            public List<(string Backend, HttpResponseMessage Response)> Responses { get; } = [];

            public List<string> WrongUris { get; } = [];
        }
    }
}
