using System.Globalization;
using System.Text;

namespace Polly.PriorityRouting.Tests.Properties;

/// <summary>
/// A monitor written from the documentation (README, docs/configuration.md, docs/recipes.md, docs/reliability.md) for a
/// pipeline with every feature on: throttle marks per backend and deployment, outlier ejection and its probe, token
/// budgets read from answers, hard affinity pins, soft-affinity keys, per-request hints and queued waits.
/// </summary>
/// <remarks>
/// <para>
/// It is driven by what actually happened — every backend call, every answer, every body read, in the order they
/// happened — and at each event it checks the pipeline's choice against the documented rules, then updates its own
/// state by those rules. It never reads the store, the budgets or the tracker.
/// </para>
/// <para>
/// Where the documentation leaves room (how long the n-th ejection in a row lasts after forgiveness, whether a soft key
/// moves on a 400, what an attempt that got no answer leaves of a budget), the model keeps an interval or "unknown"
/// instead of guessing: a backend is <em>definitely out</em>, <em>definitely available</em>, or neither, and only the
/// definite cases are checked. Every check names its rule (<see cref="Rule"/>) so that a failure points at the feature.
/// </para>
/// </remarks>
internal sealed class EveryFeatureModel
{
    private readonly Dictionary<string, ModelBackend> _backends;
    private readonly Dictionary<(string Backend, string? Partition, bool Throttle), Out> _marks = [];
    private readonly Dictionary<(string Backend, string? Partition, bool Throttle), (DateTimeOffset At, LiveRequest? By)> _markedAt = [];
    private LiveRequest? _answering;
    private readonly Dictionary<(string Backend, string? Partition), BudgetView> _budgets = [];
    private readonly Dictionary<string, string> _pins = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Sticky> _sticky = new(StringComparer.Ordinal);
    private readonly EveryFeatureSetup _setup;

    public EveryFeatureModel(EveryFeatureSetup setup, DateTimeOffset start)
    {
        _setup = setup;
        _backends = setup.Backends.ToDictionary(b => b.Name, b => new ModelBackend(b), StringComparer.Ordinal);
        Start = start;
    }

    public DateTimeOffset Start { get; }

    public List<Violation> Violations { get; } = [];

    public EveryFeatureCoverage Seen { get; } = new();

    public IReadOnlyDictionary<string, string> Pins => _pins;

    /// <summary>Every event the model saw, in order, when <c>EVERY_FEATURE_TRACE</c> is set: for diagnosis.</summary>
    public List<string>? Trace { get; } = Environment.GetEnvironmentVariable("EVERY_FEATURE_TRACE") is { Length: > 0 } ? [] : null;

    /// <summary>What the pipeline's own state says, appended to a violation for diagnosis only (never judged).</summary>
    public Func<string>? Diagnose { get; set; }

    /// <summary>How many requests wait in the strategy right now (the driver keeps it).</summary>
    public int WaitersNow { get; set; }

    /// <summary>The requests that went to wait in the strategy and are not answered yet (the driver keeps them).</summary>
    public Func<IEnumerable<LiveRequest>> Waiting { get; set; } = () => [];

    /// <summary>The backends a request may use: its hints, its pin, and with NoFailover the one it was first sent to.</summary>
    public IReadOnlyList<string> Allowed(LiveRequest request)
    {
        var allowed = _setup.Backends.Where(b => request.Spec.Hints?.Allows(b) ?? true).Select(b => b.Name).ToList();
        if (request.PinnedTo is { } pinned)
        {
            allowed = allowed.Contains(pinned) ? [pinned] : [];
        }

        // NoFailover: once sent, the first backend is the request's only one (a wait's new round included).
        if ((request.Spec.Hints?.NoFailover ?? false) && request.Calls.Count > 0)
        {
            allowed = [request.Calls[0].Backend];
        }

        return allowed;
    }

    /// <summary>Called when a request starts: resolves its pin from the ids the model saw created.</summary>
    public void Begin(LiveRequest request)
    {
        if (request.Spec.ReferencedId is { } id && _pins.TryGetValue(id, out var backend))
        {
            request.PinnedTo = backend;
            Seen.Pinned++;
        }

        if (request.Spec.Hints is { } hints)
        {
            Seen.Hinted++;
            if (hints.NoFailover)
            {
                Seen.NoFailover++;
            }
        }
    }

    /// <summary>Checks one backend call against the rules, before the backend answers.</summary>
    public void OnCall(LiveRequest request, string backend, int round, DateTimeOffset now)
    {
        Trace?.Add($"{Show(now)} #{request.Id} call {backend} (round {round})");
        var where = $"{Show(now)} request #{request.Id} ({request.Spec}) call {request.Calls.Count + 1} → {backend}" +
                    (request.Calls.Count == 0 ? string.Empty : $" (after {string.Join(", ", request.Calls.Select(c => $"{c.Backend} at {Show(c.At)}"))})");
        var allowed = Allowed(request);
        var tried = request.Calls.Where(c => c.Round == round).Select(c => c.Backend).ToHashSet(StringComparer.Ordinal);

        if (request.PinnedTo is { } pinned)
        {
            Check(backend == pinned, Rule.Pins, where, $"the request refers to an id created on {pinned}: it may reach that backend only");
            Seen.PinnedCalls++;
        }

        Check(request.Spec.Hints?.Allows(_backends[backend].Config) ?? true, Rule.Hints, where, $"the hints ({request.Spec.Hints}) do not allow {backend}");
        // NoFailover: the first backend is the request's only one, sent once per round — with MaxQueueWait it waits for
        // that backend only, and a new round after the wait may send to it again (docs/configuration.md, "Rounds").
        if (request.Spec.Hints?.NoFailover ?? false)
        {
            Check(
                request.Calls.Count == 0 || (request.Calls[0].Backend == backend && tried.Count == 0),
                Rule.NoFailover,
                where,
                $"NoFailover: one backend, once per round; earlier calls: {string.Join(", ", request.Calls.Select(c => $"{c.Backend} (round {c.Round})"))}, this one in round {round}");
        }
        Check(!tried.Contains(backend), Rule.Tiers, where, "a backend is never tried twice in one round of an execution");

        // What depends on the time is judged only when the clock did not move while the request ran.
        var timed = !request.Overlapped;
        var state = AvailabilityOf(request, backend, now);
        Check(!timed || state.Status != Status.Out, state.Rule, where, $"{backend} is out of rotation for this request: {state.Why}");

        // Best tier first: nothing definitely available (allowed, untried) may sit in a better tier than the one called.
        var candidates = allowed.Where(b => !tried.Contains(b)).ToList();
        var definitely = candidates.Where(b => AvailabilityOf(request, b, now).Status == Status.In).ToList();
        if (timed && definitely.Count > 0 && allowed.Contains(backend))
        {
            var best = definitely.Min(b => _backends[b].Priority);
            Check(
                _backends[backend].Priority <= best,
                Rule.Tiers,
                where,
                $"{backend} (p{_backends[backend].Priority}) was called while [{string.Join(", ", definitely.Where(b => _backends[b].Priority == best))}] of the better tier p{best} were available");
            Seen.TierChecks++;
        }

        // A soft key stays on its backend while that backend is available and no better tier is (docs/recipes.md, and
        // the README's "best backend that is not throttled right now").
        // Only on a request's first call in its first round: after a wait — made before any call too, when the first
        // round found nothing — it is sent against the refill it was promised, which the docs do not rank against a soft
        // preference (and the key's backend is the one the plan read before the wait).
        if (timed && request.PinnedTo is null && request.Calls.Count == 0 && !request.Waited && request.SoftKey is { } key && _sticky.TryGetValue(key, out var sticky) && sticky.Backend is { } s &&
            now < sticky.Until && candidates.Contains(s) && AvailabilityOf(request, s, now).Status == Status.In &&
            !candidates.Any(b => _backends[b].Priority < _backends[s].Priority && AvailabilityOf(request, b, now).Status != Status.Out))
        {
            Check(backend == s, Rule.SoftAffinity, where, $"the soft key '{key}' stays on {s}, which is available in the best tier, until {Show(sticky.Until)}");
            Seen.SoftChecks++;
        }

        if (_backends[backend].Config.ReportsBudget && request.Spec.Cost > 0)
        {
            Seen.BudgetedCalls++;
        }

        request.Calls.Add(new ModelCall(backend, round, now, _backends[backend].Episode));

        // The attempt's cost counts against the budget view until an answer reports it.
        if (request.Spec.Cost > 0)
        {
            View(backend, request.Partition).Unreported.Add((now, request.Spec.Cost));
        }
    }

    /// <summary>What the backend answered (before the pipeline sees it): marks, health, budget reports.</summary>
    public void OnAnswer(LiveRequest request, string backend, BackendAnswer answer, DateTimeOffset now)
    {
        _answering = request;
        Trace?.Add($"{Show(now)} #{request.Id} {backend} answers {answer.Kind} {Show(answer.Cooldown)}{(answer.Report is { } r ? $" report {r.Remaining}/{r.Limit} reset {Show(r.Reset)}" : string.Empty)}");
        var health = _backends[backend];
        switch (answer.Kind)
        {
            case AnswerKind.Throttled:
                // A throttle proves the backend is up; it keeps out the request's deployment (or, without one, the
                // whole backend) for exactly the time asked, clamped.
                health.Healthy();
                Put((backend, request.Partition, true), new Out(now + answer.Cooldown, now + answer.Cooldown, Throttle: true, "throttled"), now);
                request.ThrottledInThisCall = true;
                if (answer.FromBudget)
                {
                    Seen.BucketThrottles++;
                }

                break;

            case AnswerKind.Failed:
                Failed(health, now, mark: true);
                break;

            case AnswerKind.Returned:
                health.PendingReads++;
                if (answer.Report is { } report)
                {
                    var view = View(backend, request.Partition);
                    view.Known = true;
                    view.Remaining = report.Remaining;
                    view.Limit = report.Limit;
                    view.ResetAt = now + report.Reset;
                    view.Unreported.Clear();
                    if (report.Remaining == 0)
                    {
                        // Proactive throttling: the budget is spent until its reset.
                        Put((backend, request.Partition, true), new Out(view.ResetAt, view.ResetAt, Throttle: true, "budget spent (proactive)"), now);
                        Seen.ProactiveMarks++;
                    }
                }

                break;
        }
    }

    /// <summary>The caller read (or failed to read) a returned body: health verdicts, pins and soft keys.</summary>
    public void OnRead(LiveRequest request, string backend, bool complete, string? createdId, int status, DateTimeOffset now)
    {
        _answering = request;
        Trace?.Add($"{Show(now)} #{request.Id} read {backend} {status} {(complete ? "whole" : "broken")}");
        var health = _backends[backend];
        health.PendingReads--;
        if (request.Calls.Last(c => c.Backend == backend).Episode != health.Episode)
        {
            // Admitted before the backend's current ejection: how its body ends says nothing of what ejected it
            // (docs/reliability.md 27: "a failure (or an answer) of an attempt admitted before the current ejection does
            // not count").
        }
        else if (complete)
        {
            health.Healthy();
        }
        else
        {
            // A broken stream counts once against the backend's health (docs/reliability.md 6c), without a cooldown.
            Seen.BrokenStreams++;
            Failed(health, now, mark: false);
        }

        if (createdId is not null && complete && status == 200)
        {
            _pins[createdId] = backend;
            Seen.Created++;
        }

        if (request.SoftKey is { } key)
        {
            // A pinned request's key, or one answered with anything but a whole 200: the docs do not say where it moves.
            _sticky[key] = complete && status == 200 && request.PinnedTo is null ? new Sticky(backend, now + _setup.StickyLifetime) : new Sticky(null, now);
        }
    }

    /// <summary>The request ended without a backend answer to return: the exhausted answer, checked.</summary>
    public void OnExhausted(LiveRequest request, ExhaustedSeen answer, DateTimeOffset now)
    {
        Trace?.Add($"{Show(now)} #{request.Id} exhausted {answer}");
        var where = $"{Show(now)} request #{request.Id} ({request.Spec}) after calls [{string.Join(", ", request.Calls.Select(c => c.Backend))}]";
        Seen.Exhausted++;
        if (request.SoftKey is { } key)
        {
            _sticky[key] = new Sticky(null, now);
        }

        var allowed = Allowed(request);
        var lastRound = request.Calls.Count == 0 ? -1 : request.Calls[^1].Round;
        var tried = request.Calls.Where(c => c.Round == lastRound).Select(c => c.Backend).ToHashSet(StringComparer.Ordinal);
        var noFailoverSpent = (request.Spec.Hints?.NoFailover ?? false) && request.Calls.Count > 0;


        // The backends whose recovery the answer advertises: the one NoFailover used, else every allowed backend.
        var over = noFailoverSpent ? [request.Calls[^1].Backend] : allowed;
        TimeSpan? low = null, high = null;
        var throttleSure = request.ThrottledInThisCall;
        var throttlePossible = request.ThrottledInThisCall;
        var budgetInvolved = false;
        var budgetResets = new List<DateTimeOffset>();
        foreach (var b in over)
        {
            var r = Recovery(request, b, now);
            low = low is null || r.Low < low ? r.Low : low;
            high = high is null || r.High < high ? r.High : high;
            throttleSure |= r.ThrottleSure;
            throttlePossible |= r.ThrottlePossible;
            budgetInvolved |= r.Budget;
            if (r.BudgetReset is { } reset)
            {
                budgetResets.Add(reset);
            }
        }

        if (over.Count == 0)
        {
            Check(answer.Status == 503, request.PinnedTo is null ? Rule.Hints : Rule.Pins, where, $"nothing allowed (hints {request.Spec.Hints}, pin {request.PinnedTo}): expected 503, got {answer.Status}");
            Check(request.Calls.Count == 0, request.PinnedTo is null ? Rule.Hints : Rule.Pins, where, $"nothing allowed (pinned to {request.PinnedTo ?? "nothing"}), yet a backend was called");
            return;
        }

        if (request.Overlapped)
        {
            // The clock moved while the request ran: its answer cannot be judged against one moment.
            Seen.Overlapped++;
            return;
        }

        if (!noFailoverSpent)
        {
            var available = allowed.Where(b => !tried.Contains(b) && AvailabilityOf(request, b, now).Status == Status.In).ToList();
            Check(available.Count == 0, Rule.Tiers, where, $"answered exhausted while [{string.Join(", ", available)}] could take it");
        }

        if (throttleSure)
        {
            Check(answer.Status == 429, Rule.Exhausted, where, $"a throttle is pending among [{string.Join(", ", over)}]: expected 429, got {answer.Status}");
        }
        else if (!throttlePossible)
        {
            Check(answer.Status == 503, Rule.Exhausted, where, $"no pending unavailability among [{string.Join(", ", over)}] is a throttle: expected 503, got {answer.Status}");
        }

        // retry-after-ms is the delay rounded up to the millisecond + 2 ms of timer slack (none for a zero delay).
        var promised = answer.RetryAfterMilliseconds <= 0 ? TimeSpan.Zero : TimeSpan.FromMilliseconds(answer.RetryAfterMilliseconds - 2);
        Check(
            answer.RetryAfterSeconds == (long)Math.Ceiling(promised.TotalSeconds - 0.0005) || answer.RetryAfterSeconds == (long)Math.Ceiling(promised.TotalSeconds),
            Rule.Exhausted,
            where,
            $"Retry-After {answer.RetryAfterSeconds} s and retry-after-ms {answer.RetryAfterMilliseconds} disagree");
        var lowBound = low!.Value;
        var highBound = high!.Value + (budgetInvolved ? _setup.LongestWindow : TimeSpan.Zero);
        Check(
            promised >= lowBound - Tolerance && promised <= highBound + Tolerance,
            Rule.Exhausted,
            where,
            $"retry-after-ms {answer.RetryAfterMilliseconds} promises {Show(promised)}; the soonest recovery of [{string.Join(", ", over)}] is between {Show(lowBound)} and {Show(high.Value)}{(budgetInvolved ? " (a budget refill, possibly one window later)" : string.Empty)}");
        if (low == high && !budgetInvolved)
        {
            Seen.ExactExhausted++;
        }

        // Waits: a caller whose promised refill comes within what is left of its bound waits for it instead of a 429 —
        // unless that refill may be full: promised to an earlier caller (told to come back, or waiting).
        var promisedAt = now + promised;
        if (_setup.MaxQueueWait is { } bound && answer.Status == 429 && !noFailoverSpent && WaitersNow == 0)
        {
            var left = bound - (now - request.StartedAt);
            // Promises are first come, first served: a caller is never promised a refill before one already promised
            // an earlier caller (docs/configuration.md, "Waiting for a refill"), so a refill promised at or after this
            // one — a window corrected since may have put it after — may leave this caller nothing to wait for.
            var mayBeFull = over.Any(b => _budgets.TryGetValue((b, request.Partition), out var v) && v.Promised.Any(p => p >= promisedAt));

            // Only a promise that nothing but a refill explains: not also the end of a mark (a wait is for a refill).
            var alsoAMark = over.SelectMany(b => Keys(b, request.Partition)).Any(k => _marks.TryGetValue(k, out var m) && (m.Low == promisedAt || m.High == promisedAt));
            if (promised > TimeSpan.Zero && promised < left && budgetResets.Contains(promisedAt) && !mayBeFull && !alsoAMark)
            {
                Check(false, Rule.Waits, where, $"answered 429 promising the refill at {Show(promisedAt)}, which is within what is left of its {Show(bound)} bound ({Show(left)}): it should have waited");
            }
        }

        foreach (var b in over)
        {
            if (_budgets.TryGetValue((b, request.Partition), out var v))
            {
                v.Promised.Add(promisedAt);
            }
        }
    }

    /// <summary>A request that waited: its wait is bounded.</summary>
    public void OnCompleted(LiveRequest request, DateTimeOffset now)
    {
        if (request.Waited)
        {
            Seen.Waited++;
            if (request.Calls.Select(c => c.Round).Distinct().Count() > 2)
            {
                Seen.SecondWaits++;
            }

            var bound = _setup.MaxQueueWait ?? TimeSpan.Zero;
            // A resume later than its release (a busy thread pool) is the test's, not the strategy's.
            Check(now - request.StartedAt - request.Lateness <= bound, Rule.Waits, $"{Show(now)} request #{request.Id} ({request.Spec})", $"waited {Show(now - request.StartedAt)}, beyond its {Show(bound)} bound");
        }
    }

    public string Describe(DateTimeOffset now)
    {
        var text = new StringBuilder();
        if (Trace is not null)
        {
            text.Append(CultureInfo.InvariantCulture, $"trace:\n    {string.Join("\n    ", Trace)}\n  ");
        }

        text.Append(CultureInfo.InvariantCulture, $"model at {Show(now)}:");
        foreach (var backend in _backends.Values)
        {
            text.Append(CultureInfo.InvariantCulture, $"\n  {backend.Config.Name} (p{backend.Priority}{(backend.Config.ReportsBudget ? ", budget " + backend.Config.Limit + "/" + Show(backend.Config.Window) : string.Empty)}): {backend.FailuresInARow} failure(s) in a row{(backend.ProbeDue ? ", probe due" : string.Empty)}");
            foreach (var ((_, partition, _), mark) in _marks.Where(m => m.Key.Backend == backend.Config.Name))
            {
                text.Append(CultureInfo.InvariantCulture, $"\n    {partition ?? "(whole)"}: {mark.Why} until {Show(mark.Low)}..{Show(mark.High)}{(now < mark.High ? string.Empty : " (over)")}");
            }

            foreach (var ((_, partition), view) in _budgets.Where(m => m.Key.Backend == backend.Config.Name && m.Value.Known))
            {
                text.Append(CultureInfo.InvariantCulture, $"\n    budget {partition ?? "(whole)"}: {view.Remaining} left until {Show(view.ResetAt)}, then {view.Limit}; {view.Unreported.Sum(u => u.Cost)} sent unreported");
            }
        }

        foreach (var (key, sticky) in _sticky)
        {
            text.Append(CultureInfo.InvariantCulture, $"\n  soft key {key}: {sticky.Backend ?? "unknown"} until {Show(sticky.Until)}");
        }

        return text.ToString();
    }

    public string Show(DateTimeOffset at) => Show(at - Start);

    public static string Show(TimeSpan offset) => offset.TotalSeconds.ToString("+0.###s;-0.###s;0s", CultureInfo.InvariantCulture);

    /// <summary>Slack for rounding to the millisecond.</summary>
    private static readonly TimeSpan Tolerance = TimeSpan.FromMilliseconds(1);

    private void Check(bool condition, Rule rule, string where, string what)
    {
        if (!condition)
        {
            Violations.Add(new Violation(rule, $"{where}: {what}{(Diagnose is null ? string.Empty : "\n      (the store holds: " + Diagnose() + ")")}"));
        }
    }

    private BudgetView View(string backend, string? partition)
    {
        if (!_budgets.TryGetValue((backend, partition), out var view))
        {
            view = new BudgetView();
            _budgets[(backend, partition)] = view;
        }

        return view;
    }

    private void Failed(ModelBackend backend, DateTimeOffset now, bool mark)
    {
        var cooldown = _setup.DefaultCooldown;
        backend.FailuresInARow++;
        if (backend.ProbeDue || backend.FailuresInARow >= _setup.ConsecutiveFailures)
        {
            // Ejected: the n-th ejection in a row lasts n × base (forgiven by time healthy), at most the maximum; the
            // backend is out for that or the failure's own cooldown, whichever is longer. One probe goes first after.
            var low = now + Max(_setup.BaseEjectionTime, cooldown);
            var high = now + Max(_setup.MaxEjectionTime, cooldown);
            Put((backend.Config.Name, null, false), new Out(low, high, Throttle: false, "ejected"), now);
            backend.FailuresInARow = 0;
            backend.ProbeDue = true;
            backend.Episode++;
            Seen.Ejections++;
            return;
        }

        if (mark)
        {
            Put((backend.Config.Name, null, false), new Out(now + cooldown, now + cooldown, Throttle: false, "failed"), now);
        }
    }

    /// <summary>The store's rule: a later deadline replaces an earlier one, an earlier one never shortens it.</summary>
    /// <remarks>Throttles and failures are kept apart: the exhausted answer's status depends on which one the store holds.</remarks>
    private void Put((string, string?, bool) key, Out mark, DateTimeOffset now)
    {
        _markedAt[key] = (now, _answering);
        if (_marks.TryGetValue(key, out var old))
        {
            mark = new Out(Max(old.Low, mark.Low), Max(old.High, mark.High), mark.Throttle, mark.High >= old.High ? mark.Why : old.Why);
        }

        _marks[key] = mark;
    }

    private Availability AvailabilityOf(LiveRequest request, string backend, DateTimeOffset now)
    {
        var result = new Availability(Status.In, Rule.Tiers, string.Empty);
        foreach (var key in Keys(backend, request.Partition))
        {
            if (_marks.TryGetValue(key, out var mark))
            {
                if (now < mark.Low && !MayPredate(request, key, now))
                {
                    return new Availability(Status.Out, mark.Why == "ejected" ? Rule.Ejection : Rule.Marks, $"{mark.Why} ({key.Item2 ?? "whole backend"}) until at least {Show(mark.Low)}");
                }

                if (now < mark.High)
                {
                    result = result with { Status = Status.Maybe };
                }
            }
        }

        if (_backends[backend].PendingReads > 0)
        {
            // An answer not read yet may be a probe in flight: others may be held off until it answers.
            result = result with { Status = Status.Maybe };
        }

        var cost = request.Spec.Cost;
        if (cost > 0 && _budgets.TryGetValue((backend, request.Partition), out var view) && view.Known)
        {
            var (lo, hi) = view.Range(now);
            lo -= HeldByOthers(request, backend);
            if (hi < cost)
            {
                return new Availability(Status.Out, Rule.Budgets, $"its budget view has {hi} tokens left until {Show(view.ResetAt)}, the request costs {cost}");
            }

            if (lo < cost)
            {
                result = result with { Status = Status.Maybe };
            }
        }

        return result;
    }

    private RecoverySeen Recovery(LiveRequest request, string backend, DateTimeOffset now)
    {
        TimeSpan low = TimeSpan.Zero, high = TimeSpan.Zero;
        bool throttleSure = false, throttlePossible = false, budget = false;
        DateTimeOffset? budgetReset = null;
        foreach (var key in Keys(backend, request.Partition))
        {
            if (_marks.TryGetValue(key, out var mark) && now < mark.High)
            {
                low = MayPredate(request, key, now) ? low : Max(low, mark.Low - now);
                high = Max(high, mark.High - now);
                if (mark.Throttle)
                {
                    // The store keeps one deadline per key: the throttle is what it holds when it surely outlasts the failure.
                    var failure = _marks.TryGetValue((key.Item1, key.Item2, false), out var f) ? f.High : DateTimeOffset.MinValue;
                    throttleSure |= now < mark.Low && mark.Low > failure && !MayPredate(request, key, now);
                    throttlePossible = true;
                }
            }
        }

        if (_backends[backend].PendingReads > 0)
        {
            high = Max(high, TimeSpan.FromSeconds(1));
            throttlePossible = true;
        }

        var cost = request.Spec.Cost;
        if (cost > 0 && _budgets.TryGetValue((backend, request.Partition), out var view) && view.Known)
        {
            var (lo, hi) = view.Range(now);
            lo -= HeldByOthers(request, backend);
            if (lo < cost)
            {
                budget = true;
                throttlePossible = true;
                var untilReset = view.ResetAt > now ? view.ResetAt - now : TimeSpan.Zero;

                // Past its reset the view takes the budget as full for the window it is in now and counts what is sent
                // in it (docs/configuration.md, "The view"): that window refills within one window's length.
                high = Max(high, view.ResetAt > now ? untilReset : _setup.LongestWindow);
                if (hi < cost)
                {
                    // Whether a spent budget makes the answer a 429 when a failure is pending too, the docs leave open.
                    low = Max(low, untilReset);
                    budgetReset = view.ResetAt;
                }
            }
        }

        return new RecoverySeen(low, high, throttleSure, throttlePossible, budget, budgetReset);
    }

    /// <summary>
    /// The room other waiters may hold in <paramref name="backend"/>'s budget for this request's partition: a waiter's
    /// room is held from its refill's moment on until its next admission (docs/reliability.md 47), and the model knows
    /// neither which allowed backend's refill it was promised nor when: any waiter not answered yet may hold its cost in
    /// any budget it may use. It lowers what the view surely has left, never what it may have.
    /// </summary>
    private long HeldByOthers(LiveRequest request, string backend)
        => Waiting()
            .Where(w => !ReferenceEquals(w, request) && !w.Done && w.Partition == request.Partition && w.Spec.Cost > 0 && Allowed(w).Contains(backend))
            .Sum(w => w.Spec.Cost);

    /// <summary>
    /// Whether the request may have been admitted, or answered, before a mark made at this very moment: waiters released
    /// together call their backends at once (docs/configuration.md, "Released together"), so a released waiter's
    /// attempt may be in flight when another one's failure or broken body marks the backend — and a request in flight
    /// when a backend is ejected fails too (docs/reliability.md 27). The model sees the call after the mark.
    /// </summary>
    private bool MayPredate(LiveRequest request, (string, string?, bool) key, DateTimeOffset now)
        => request.Waited && _markedAt.TryGetValue(key, out var marked) && marked.At == now && !ReferenceEquals(marked.By, request);

    private static (string, string?, bool)[] Keys(string backend, string? partition)
        => partition is null
            ? [(backend, null, true), (backend, null, false)]
            : [(backend, null, true), (backend, null, false), (backend, partition, true)];

    private static DateTimeOffset Max(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    private enum Status
    {
        In,
        Maybe,
        Out,
    }

    private sealed record Availability(Status Status, Rule Rule, string Why);

    private sealed record RecoverySeen(TimeSpan Low, TimeSpan High, bool ThrottleSure, bool ThrottlePossible, bool Budget, DateTimeOffset? BudgetReset);

    /// <summary>Out of rotation until at least <paramref name="Low"/> and at most <paramref name="High"/>.</summary>
    private sealed record Out(DateTimeOffset Low, DateTimeOffset High, bool Throttle, string Why);

    private sealed record Sticky(string? Backend, DateTimeOffset Until);

    private sealed class ModelBackend(EveryFeatureBackend config)
    {
        public EveryFeatureBackend Config { get; } = config;

        public int Priority => Config.Priority;

        public int FailuresInARow { get; set; }

        public bool ProbeDue { get; set; }

        /// <summary>Gets or sets the ejection episode: one more with each ejection.</summary>
        public int Episode { get; set; }

        public int PendingReads { get; set; }

        public void Healthy()
        {
            FailuresInARow = 0;
            ProbeDue = false;
        }
    }

    /// <summary>
    /// The budget view of docs/configuration.md: the count the last answer reported, less what was sent since without
    /// a report (an attempt that failed may or may not have spent it: the view is a range), until its reset moment; then
    /// the limit, less what was sent since.
    /// </summary>
    private sealed class BudgetView
    {
        public bool Known { get; set; }

        public long Remaining { get; set; }

        public long Limit { get; set; }

        public DateTimeOffset ResetAt { get; set; }

        /// <summary>The moments exhausted answers sent callers back to.</summary>
        public HashSet<DateTimeOffset> Promised { get; } = [];

        /// <summary>Attempts sent since the last report that got no report of their own (429, 5xx, reset).</summary>
        public List<(DateTimeOffset At, long Cost)> Unreported { get; } = [];

        public (long Low, long High) Range(DateTimeOffset now)
        {
            // Before the reset: the count reported; after it: the limit, counting only what was sent after the reset.
            var before = now < ResetAt;
            var full = before ? Remaining : Limit;
            var unreported = Unreported.Where(u => before || u.At >= ResetAt).Sum(u => u.Cost);
            return (full - unreported, full);
        }
    }
}

/// <summary>The family of documented rules a check belongs to.</summary>
internal enum Rule
{
    /// <summary>Only / never / max priority; nothing allowed → 503 without a call.</summary>
    Hints,

    /// <summary>One backend call per request.</summary>
    NoFailover,

    /// <summary>A request that refers to an id goes to the id's backend only.</summary>
    Pins,

    /// <summary>Best tier first, never a backend twice in a round, exhausted only when nothing is available.</summary>
    Tiers,

    /// <summary>A soft key stays on its backend while it is available in the best tier.</summary>
    SoftAffinity,

    /// <summary>A marked backend is not called before its deadline.</summary>
    Marks,

    /// <summary>An ejected backend is not called before its ejection ends (broken streams count).</summary>
    Ejection,

    /// <summary>No call beyond the budget view.</summary>
    Budgets,

    /// <summary>The exhausted answer: status and headers against the soonest recovery.</summary>
    Exhausted,

    /// <summary>Bounded waits; no 429 while a refill within the bound is promised.</summary>
    Waits,

    /// <summary>The caller's own request comes back; discarded answers are disposed; the answer is the backend's.</summary>
    Answers,
}

internal sealed record Violation(Rule Rule, string What);

/// <summary>One backend call; <paramref name="Episode"/> is the backend's ejection episode when it was admitted.</summary>
internal sealed record ModelCall(string Backend, int Round, DateTimeOffset At, int Episode);

internal enum AnswerKind
{
    Returned,
    Throttled,
    Failed,
}

internal sealed record BudgetReport(long Remaining, long Limit, TimeSpan Reset);

internal sealed record BackendAnswer(AnswerKind Kind, TimeSpan Cooldown, BudgetReport? Report, bool FromBudget);

internal sealed record ExhaustedSeen(int Status, long RetryAfterSeconds, long RetryAfterMilliseconds);

/// <summary>Counters of what the generated sequences reached, so that the property can prove it is not vacuous.</summary>
internal sealed class EveryFeatureCoverage
{
    public int Pinned { get; set; }

    public int PinnedCalls { get; set; }

    public int Created { get; set; }

    public int Hinted { get; set; }

    public int NoFailover { get; set; }

    public int TierChecks { get; set; }

    public int SoftChecks { get; set; }

    public int BudgetedCalls { get; set; }

    public int BucketThrottles { get; set; }

    public int ProactiveMarks { get; set; }

    public int Ejections { get; set; }

    public int BrokenStreams { get; set; }

    public int Exhausted { get; set; }

    public int ExactExhausted { get; set; }

    public int Waited { get; set; }

    public int SecondWaits { get; set; }

    public int Cancelled { get; set; }

    /// <summary>Gets or sets the answers not judged on time because the clock moved while their request ran.</summary>
    public int Overlapped { get; set; }

    public void AddTo(EveryFeatureCoverage total)
    {
        lock (total)
        {
            foreach (var property in typeof(EveryFeatureCoverage).GetProperties())
            {
                property.SetValue(total, (int)property.GetValue(total)! + (int)property.GetValue(this)!);
            }
        }
    }

    public override string ToString()
        => string.Join(", ", typeof(EveryFeatureCoverage).GetProperties().Select(p => $"{p.Name} {p.GetValue(this)}"));
}
