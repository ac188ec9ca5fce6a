using System.Globalization;
using System.Text;

namespace Polly.PriorityRouting.Tests.Properties;

/// <summary>
/// A deliberately naive model of what the documentation (README, docs/configuration.md, docs/reliability.md rows 1–3,
/// 21–24, 27, 32) promises for a sequence of requests: a list of "out until" marks per backend and per (backend,
/// deployment), and per backend a failure streak, an ejection count, the end of its last ejection and a probe slot.
/// </summary>
/// <remarks>
/// It is written from the documented rules, not from the implementation: ejection lengths come from an explicit table
/// per configuration (<see cref="EjectionCase.Lengths"/>), forgiveness is a loop that walks the healthy time one base
/// ejection time at a step, the probe is "the first attempt after an ejection has ended", and the exhausted answer is
/// the soonest moment in the model's own marks. Nothing here reads the store or the tracker.
/// <para>
/// Where the documentation leaves room, the model takes these readings (each one checked against the implementation):
/// an ejection keeps the backend out for the longer of the ejection and the failure's own cooldown (an ejection never
/// brings a failing backend back sooner than a plain failure would); "time spent healthy" runs from the end of the last
/// ejection to the failure that ejects again (Envoy's reading: time not ejected), and a failed probe forgives nothing;
/// of two marks with the same deadline the first one stays (the store keeps the later deadline, and a tie is not later).
/// </para>
/// </remarks>
internal sealed class RoutingModel
{
    /// <summary>What a backend whose single probe is in flight advertises in the exhausted answer.</summary>
    public static readonly TimeSpan ProbeDecidesIn = TimeSpan.FromSeconds(1);

    private readonly ModelBackend[] _backends;
    private readonly EjectionCase _ejection;
    private readonly TimeSpan _maxCooldown;
    private readonly Dictionary<(string Backend, string? Partition), Mark> _marks = [];

    public RoutingModel(IReadOnlyList<(string Name, int Priority)> backends, EjectionCase ejection, TimeSpan maxCooldown, DateTimeOffset start)
    {
        _backends = [.. backends.Select(b => new ModelBackend(b.Name, b.Priority))];
        _ejection = ejection;
        _maxCooldown = maxCooldown;
        Start = start;
        Now = start;
    }

    public DateTimeOffset Start { get; }

    public DateTimeOffset Now { get; private set; }

    /// <summary>Counts what the sequences reached, so that the property can prove it is not vacuous.</summary>
    public Coverage Seen { get; } = new();

    public void Advance(TimeSpan by) => Now += by;

    /// <summary>The mark that keeps a backend (or one of its deployments) out right now, if any.</summary>
    public Mark? ActiveMark(string backend, string? partition)
        => _marks.TryGetValue((backend, partition), out var mark) && Now < mark.Until ? mark : null;

    /// <summary>
    /// Plays one request (and the request nested in it, if any) through the documented rules.
    /// </summary>
    /// <param name="request">The request.</param>
    /// <param name="choose">
    /// Picks the backend of an attempt among the legal candidates (the untried backends in rotation of the best tier, in
    /// configured order): the first one, or — with a seeded randomizer — the one the pipeline actually called, after
    /// checking that it is legal.
    /// </param>
    /// <param name="traces">Receives the expected calls and answer of every request played, by request id.</param>
    public void Play(ModelRequest request, Func<ModelRequest, int, IReadOnlyList<string>, string> choose, Dictionary<int, ExpectedTrace> traces)
    {
        var trace = new ExpectedTrace();
        traces[request.Id] = trace;
        var tried = new HashSet<string>(StringComparer.Ordinal);
        var throttledInThisCall = false;
        while (true)
        {
            var candidates = _backends.Where(b => !tried.Contains(b.Name) && IsInRotation(b, request.Partition)).ToList();
            if (candidates.Count == 0)
            {
                trace.Answer = Exhausted(request.Partition, throttledInThisCall);
                return;
            }

            var bestTier = candidates.Min(b => b.Priority);
            var legal = candidates.Where(b => b.Priority == bestTier).Select(b => b.Name).ToList();
            var name = choose(request, trace.Calls.Count, legal);
            var backend = _backends.Single(b => b.Name == name);
            tried.Add(name);
            trace.Calls.Add(name);

            // Admission: the first attempt after an ejection has ended is the probe, and holds the backend alone.
            var isProbe = backend.ProbeDue && backend.EjectionEnds is { } ended && Now >= ended;
            if (isProbe)
            {
                backend.ProbeHeldBy = request.Id;
                Seen.Probes++;
            }

            var admittedAfterEjections = backend.TimesEjected;
            var sentAt = Now;

            if (request.Nested is { } nested && trace.Calls.Count - 1 == nested.AtAttempt)
            {
                if (backend.ProbeHeldBy is not null)
                {
                    Seen.NestedDuringProbe++;
                }

                Play(nested.Request, choose, traces);
            }

            var behaviour = request.Behaviours[backend.Index(_backends)];
            Now += behaviour.Delay;

            // An answer to an attempt admitted before the backend's latest ejection says nothing about it any more.
            var current = admittedAfterEjections == backend.TimesEjected;
            if (!current)
            {
                Seen.StaleVerdicts++;
            }

            switch (behaviour.Kind)
            {
                case BehaviourKind.Ok or BehaviourKind.BadRequest or BehaviourKind.Spent:
                    if (current)
                    {
                        Healthy(backend);
                    }

                    if (behaviour.Kind == BehaviourKind.Spent && sentAt + Clamp(TimeSpan.FromMilliseconds(behaviour.Milliseconds)) is var resetAt && resetAt > Now)
                    {
                        // Proactive throttling: the budget is spent until its reset, counted from the send (the backend
                        // reported it when it admitted the attempt); the answer still goes to the caller.
                        Put(ThrottleKey(backend, request.Partition), new Mark(resetAt, BackendUnavailableReason.Throttled));
                        Seen.ProactiveMarks++;
                    }

                    FreeProbe(backend, request.Id);
                    trace.Answer = ExpectedAnswer.Returned(name, behaviour.Status);
                    return;

                case BehaviourKind.Throttle or BehaviourKind.ThrottleWithoutSignal or BehaviourKind.UnavailableRetryAfter:
                    // A throttle proves the backend is up; it keeps out the request's deployment only (or the whole
                    // backend for a request without one), for the time asked.
                    if (current)
                    {
                        Healthy(backend);
                    }

                    var asked = behaviour.Kind switch
                    {
                        BehaviourKind.Throttle => TimeSpan.FromMilliseconds(behaviour.Milliseconds),
                        BehaviourKind.UnavailableRetryAfter => TimeSpan.FromSeconds(behaviour.Milliseconds / 1000),
                        _ => _ejection.DefaultCooldown,
                    };
                    Put(ThrottleKey(backend, request.Partition), new Mark(Now + Clamp(asked), BackendUnavailableReason.Throttled));
                    throttledInThisCall = true;
                    if (request.Partition is not null)
                    {
                        Seen.PartitionThrottles++;
                    }

                    break;

                default:
                    if (current)
                    {
                        Failed(backend, isProbe, behaviour.Reason);
                    }
                    else
                    {
                        Put((backend.Name, null), new Mark(Now + _ejection.DefaultCooldown, behaviour.Reason));
                    }

                    break;
            }

            FreeProbe(backend, request.Id);
        }
    }

    /// <summary>Describes the model's state for a failure message.</summary>
    public string Describe()
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"model at {Show(Now - Start)}:");
        foreach (var backend in _backends)
        {
            text.Append(CultureInfo.InvariantCulture, $"\n  {backend.Name} (p{backend.Priority}): {backend.FailuresInARow} failure(s) in a row, ejection count {backend.EjectionsInARow}");
            if (backend.EjectionEnds is { } ends)
            {
                text.Append(CultureInfo.InvariantCulture, $", last ejection ends at {Show(ends - Start)}");
            }

            if (backend.ProbeDue)
            {
                text.Append(", probe due");
            }

            foreach (var ((name, partition), mark) in _marks.Where(m => m.Key.Backend == backend.Name).OrderBy(m => m.Key.Partition, StringComparer.Ordinal))
            {
                text.Append(CultureInfo.InvariantCulture, $"\n    {partition ?? "(whole)"}: {mark.Reason} until {Show(mark.Until - Start)}{(Now < mark.Until ? string.Empty : " (over)")}");
            }
        }

        return text.ToString();
    }

    public static string Show(TimeSpan offset) => offset.TotalSeconds.ToString("+0.###s;-0.###s;0s", CultureInfo.InvariantCulture);

    private static (string, string?) ThrottleKey(ModelBackend backend, string? partition) => (backend.Name, partition);

    private bool IsInRotation(ModelBackend backend, string? partition)
    {
        if (ActiveMark(backend.Name, null) is not null)
        {
            return false;
        }

        if (partition is not null && ActiveMark(backend.Name, partition) is not null)
        {
            return false;
        }

        if (backend.EjectionEnds is { } ends && Now < ends)
        {
            return false;
        }

        // Another request is probing it: everyone else goes elsewhere until the probe answers.
        return backend.ProbeHeldBy is null;
    }

    private static void Healthy(ModelBackend backend)
    {
        backend.FailuresInARow = 0;
        backend.ProbeDue = false;
    }

    private void Failed(ModelBackend backend, bool wasProbe, BackendUnavailableReason reason)
    {
        backend.FailuresInARow++;
        if (!wasProbe && backend.FailuresInARow < _ejection.ConsecutiveFailures)
        {
            Put((backend.Name, null), new Mark(Now + _ejection.DefaultCooldown, reason));
            return;
        }

        // Ejected. Each whole base ejection time spent back in rotation since the last ejection ended forgives one
        // earlier ejection; a failed probe was never back, so it forgives nothing.
        var count = backend.EjectionsInARow;
        if (!wasProbe && backend.EjectionEnds is { } lastEnded)
        {
            for (var healthyUntil = lastEnded + _ejection.BaseEjectionTime; healthyUntil <= Now && count > 0; healthyUntil += _ejection.BaseEjectionTime)
            {
                count--;
                Seen.Forgiven++;
            }
        }

        count++;
        var length = count <= _ejection.Lengths.Length ? _ejection.Lengths[count - 1] : _ejection.Lengths[^1];
        backend.EjectionsInARow = count;
        backend.EjectionEnds = Now + length;
        backend.FailuresInARow = 0;
        backend.ProbeDue = true;
        backend.TimesEjected++;
        Seen.Ejections++;
        if (wasProbe)
        {
            Seen.FailedProbes++;
        }

        if (count > 1)
        {
            Seen.RepeatedEjections++;
        }

        // The backend is out for its ejection, or for the cooldown of the failure itself if that is longer.
        var outFor = length > _ejection.DefaultCooldown ? length : _ejection.DefaultCooldown;
        Put((backend.Name, null), new Mark(Now + outFor, BackendUnavailableReason.Ejected));
    }

    private static void FreeProbe(ModelBackend backend, int requestId)
    {
        if (backend.ProbeHeldBy == requestId)
        {
            backend.ProbeHeldBy = null;
        }
    }

    /// <summary>The store's rule: a later deadline replaces an earlier one, an earlier one never shortens it.</summary>
    private void Put((string, string?) key, Mark mark)
    {
        if (!_marks.TryGetValue(key, out var old) || mark.Until > old.Until)
        {
            _marks[key] = mark;
        }
    }

    private TimeSpan Clamp(TimeSpan asked) => asked > _maxCooldown ? _maxCooldown : asked;

    private ExpectedAnswer Exhausted(string? partition, bool throttledInThisCall)
    {
        Seen.Exhausted++;
        var throttled = throttledInThisCall;
        TimeSpan? soonest = null;
        foreach (var backend in _backends)
        {
            var wait = TimeSpan.Zero;
            foreach (var mark in new[] { ActiveMark(backend.Name, null), partition is null ? null : ActiveMark(backend.Name, partition) })
            {
                if (mark is { } m)
                {
                    throttled |= m.Reason == BackendUnavailableReason.Throttled;
                    wait = m.Until - Now > wait ? m.Until - Now : wait;
                }
            }

            // While its probe is in flight nobody else may use the backend, whatever shorter mark it has: the probe decides.
            if (backend.ProbeHeldBy is not null && wait < ProbeDecidesIn)
            {
                wait = ProbeDecidesIn;
                Seen.ExhaustedWhileProbing++;
            }

            soonest = soonest is null || wait < soonest ? wait : soonest;
        }

        var delay = soonest ?? TimeSpan.Zero;

        // Round up by whole units on the tick count: whole seconds for Retry-After, milliseconds (+ 2 ms of timer slack,
        // none when there is nothing to wait for) for retry-after-ms.
        var seconds = (delay.Ticks + TimeSpan.TicksPerSecond - 1) / TimeSpan.TicksPerSecond;
        var milliseconds = delay.Ticks == 0 ? 0 : ((delay.Ticks + TimeSpan.TicksPerMillisecond - 1) / TimeSpan.TicksPerMillisecond) + 2;
        return ExpectedAnswer.ExhaustedAnswer(throttled ? 429 : 503, seconds, milliseconds);
    }

    private sealed class ModelBackend(string name, int priority)
    {
        public string Name { get; } = name;

        public int Priority { get; } = priority;

        public int FailuresInARow { get; set; }

        /// <summary>The n of "the n-th ejection in a row", after forgiveness.</summary>
        public int EjectionsInARow { get; set; }

        public DateTimeOffset? EjectionEnds { get; set; }

        public bool ProbeDue { get; set; }

        public int? ProbeHeldBy { get; set; }

        /// <summary>How many times it was ever ejected: an attempt admitted before the latest ejection is stale.</summary>
        public int TimesEjected { get; set; }

        public int Index(ModelBackend[] all) => Array.IndexOf(all, this);
    }
}

/// <summary>
/// One outlier-ejection configuration with its ejection lengths written out by hand: the n-th ejection in a row lasts
/// <c>Lengths[n - 1]</c>, and every one beyond the list lasts as long as the last (the maximum).
/// </summary>
internal sealed record EjectionCase(
    string Name,
    int ConsecutiveFailures,
    TimeSpan BaseEjectionTime,
    TimeSpan MaxEjectionTime,
    TimeSpan DefaultCooldown,
    TimeSpan[] Lengths)
{
    public override string ToString() => Name;
}

internal sealed record Mark(DateTimeOffset Until, BackendUnavailableReason Reason);

internal sealed record ModelRequest(int Id, string? Partition, Behaviour[] Behaviours, ModelNested? Nested);

internal sealed record ModelNested(int AtAttempt, ModelRequest Request);

internal sealed class ExpectedTrace
{
    public List<string> Calls { get; } = [];

    public ExpectedAnswer? Answer { get; set; }
}

internal sealed record ExpectedAnswer(bool IsExhausted, string? Backend, int Status, long RetryAfterSeconds, long RetryAfterMilliseconds)
{
    public static ExpectedAnswer Returned(string backend, int status) => new(false, backend, status, 0, 0);

    public static ExpectedAnswer ExhaustedAnswer(int status, long seconds, long milliseconds) => new(true, null, status, seconds, milliseconds);

    public override string ToString() => IsExhausted
        ? $"exhausted {Status} Retry-After: {RetryAfterSeconds}, retry-after-ms: {RetryAfterMilliseconds}"
        : $"{Status} from {Backend}";
}

/// <summary>Counters of what the generated sequences reached.</summary>
internal sealed class Coverage
{
    public int Ejections { get; set; }

    public int RepeatedEjections { get; set; }

    public int Forgiven { get; set; }

    public int Probes { get; set; }

    public int FailedProbes { get; set; }

    public int NestedDuringProbe { get; set; }

    public int ExhaustedWhileProbing { get; set; }

    public int StaleVerdicts { get; set; }

    public int ProactiveMarks { get; set; }

    public int PartitionThrottles { get; set; }

    public int Exhausted { get; set; }

    public void AddTo(Coverage total)
    {
        lock (total)
        {
            total.Ejections += Ejections;
            total.RepeatedEjections += RepeatedEjections;
            total.Forgiven += Forgiven;
            total.Probes += Probes;
            total.FailedProbes += FailedProbes;
            total.NestedDuringProbe += NestedDuringProbe;
            total.ExhaustedWhileProbing += ExhaustedWhileProbing;
            total.StaleVerdicts += StaleVerdicts;
            total.ProactiveMarks += ProactiveMarks;
            total.PartitionThrottles += PartitionThrottles;
            total.Exhausted += Exhausted;
        }
    }

    public override string ToString()
        => $"ejections {Ejections} (repeated {RepeatedEjections}, forgiven steps {Forgiven}), probes {Probes} (failed {FailedProbes}), " +
           $"nested during a probe {NestedDuringProbe}, exhausted while probing {ExhaustedWhileProbing}, stale verdicts {StaleVerdicts}, " +
           $"proactive marks {ProactiveMarks}, partition throttles {PartitionThrottles}, exhausted answers {Exhausted}";
}
