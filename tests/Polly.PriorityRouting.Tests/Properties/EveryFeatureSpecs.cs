using System.Globalization;

namespace Polly.PriorityRouting.Tests.Properties;

/// <summary>One backend of a generated pool: its tier and weight, and whether it reports a token budget.</summary>
internal sealed record EveryFeatureBackend(string Name, int Priority, int Weight, bool ReportsBudget, long Limit, TimeSpan Window)
{
    public string ApiKey => "key-" + Name;

    public override string ToString()
        => $"{Name} p{Priority} w{Weight}{(ReportsBudget ? $" budget {Limit}/{EveryFeatureModel.Show(Window)[1..]}" : string.Empty)}";
}

/// <summary>A generated pipeline: backends, health and wait settings, and the seed of its weighted draws.</summary>
internal sealed record EveryFeatureSetup(
    EveryFeatureBackend[] Backends,
    TimeSpan DefaultCooldown,
    int ConsecutiveFailures,
    TimeSpan BaseEjectionTime,
    TimeSpan MaxEjectionTime,
    TimeSpan? MaxQueueWait,
    int Seed)
{
    public TimeSpan StickyLifetime { get; } = TimeSpan.FromSeconds(5);

    public TimeSpan LongestWindow => Backends.Max(b => b.ReportsBudget ? b.Window : TimeSpan.Zero);

    public override string ToString()
        => $"backends [{string.Join("; ", Backends.Select(b => b.ToString()))}], cooldown {EveryFeatureModel.Show(DefaultCooldown)[1..]}, " +
           $"ejection after {ConsecutiveFailures} ({EveryFeatureModel.Show(BaseEjectionTime)[1..]}..{EveryFeatureModel.Show(MaxEjectionTime)[1..]}), " +
           $"MaxQueueWait {(MaxQueueWait is { } w ? EveryFeatureModel.Show(w)[1..] : "off")}, seed {Seed.ToString(CultureInfo.InvariantCulture)}";
}

/// <summary>Per-request hints, by backend index.</summary>
internal sealed record HintSpec(int OnlyMask, int ExcludedMask, int MaxPriority, bool NoFailover, EveryFeatureBackend[] Backends)
{
    public bool Allows(EveryFeatureBackend backend)
    {
        var index = Array.IndexOf(Backends, backend);
        return (OnlyMask == 0 || (OnlyMask & (1 << index)) != 0) &&
               (ExcludedMask & (1 << index)) == 0 &&
               (MaxPriority == 0 || backend.Priority <= MaxPriority);
    }

    public PriorityRoutingHints ToHints(string? affinityKey) => new()
    {
        OnlyBackends = OnlyMask == 0 ? null : Names(OnlyMask),
        ExcludedBackends = ExcludedMask == 0 ? null : Names(ExcludedMask),
        MaxPriority = MaxPriority == 0 ? null : MaxPriority,
        NoFailover = NoFailover,
        AffinityKey = affinityKey,
    };

    public override string ToString()
    {
        var parts = new List<string>();
        if (OnlyMask != 0)
        {
            parts.Add("only " + string.Join("+", Names(OnlyMask)));
        }

        if (ExcludedMask != 0)
        {
            parts.Add("never " + string.Join("+", Names(ExcludedMask)));
        }

        if (MaxPriority != 0)
        {
            parts.Add($"max p{MaxPriority}");
        }

        if (NoFailover)
        {
            parts.Add("no failover");
        }

        return parts.Count == 0 ? "no hint" : string.Join(", ", parts);
    }

    private string[] Names(int mask) => [.. Backends.Where((_, i) => (mask & (1 << i)) != 0).Select(b => b.Name)];
}

/// <summary>What one backend does with one request.</summary>
internal enum ActKind
{
    /// <summary>200 (within the budget, if the backend keeps one; else the budget's 429).</summary>
    Ok,

    /// <summary>200 whose body breaks half-way (a chat stream aborted): the caller's read throws.</summary>
    Aborted,

    /// <summary>429 with <c>retry-after-ms</c>.</summary>
    Throttle,

    /// <summary>500 or 503 without a throttle signal.</summary>
    ServerError,

    /// <summary>The connection is reset.</summary>
    TransportError,

    /// <summary>400, returned to the caller.</summary>
    BadRequest,
}

internal sealed record Act(ActKind Kind, int Milliseconds)
{
    public override string ToString() => Kind switch
    {
        ActKind.Throttle => $"429 {Milliseconds.ToString(CultureInfo.InvariantCulture)}ms",
        ActKind.ServerError => Milliseconds == 0 ? "500" : "503",
        ActKind.TransportError => "reset",
        ActKind.BadRequest => "400",
        ActKind.Aborted => "200 aborted",
        _ => "200",
    };
}

internal enum Shape
{
    /// <summary><c>POST /openai/deployments/{d}/chat/completions</c>: throttle partition and budget per deployment.</summary>
    Chat,

    /// <summary><c>POST /openai/v1/responses</c>: creates a stored response, pinned to the backend that answers.</summary>
    Create,

    /// <summary>A Responses create with <c>previous_response_id</c> (spelled in one of several ways): pinned.</summary>
    FollowUp,

    /// <summary><c>GET /openai/v1/responses/{id}</c>: pinned, costs nothing.</summary>
    Read,

    /// <summary><c>POST /openai/v1/files</c>: uploads a file, pinned to the backend that answers.</summary>
    Upload,

    /// <summary>A chat completion naming an uploaded file only in a content part (issue 19, defect 4): pinned.</summary>
    ChatWithFile,
}

/// <summary>How a follow-up spells its <c>previous_response_id</c> (issue 19, defect 7: as JSON parsers read it).</summary>
internal enum Spelling
{
    Plain,

    /// <summary><c>"previous\u005fresponse_id"</c>.</summary>
    EscapedName,

    /// <summary><c>"resp\u005f…"</c>.</summary>
    EscapedValue,

    /// <summary>A decoy first, the real one last: the last wins.</summary>
    DuplicateLastWins,

    /// <summary>A create (no top-level id) with a decoy <c>previous_response_id</c> inside <c>metadata</c>: not pinned.</summary>
    NestedDecoy,
}

/// <summary>A soft-affinity key: none, the body's <c>user</c> or <c>prompt_cache_key</c>, or the hint's.</summary>
internal enum KeySource
{
    None,
    User,
    PromptCacheKey,
    Hint,
}

internal abstract record Step;

internal sealed record WaitStep(TimeSpan By) : Step;

/// <summary>The oldest request waiting in the strategy gives up (its own cancellation).</summary>
internal sealed record CancelStep : Step;

/// <summary>
/// A generated request: its shape, deployment, cost, which created id it refers to and how it spells it, its soft key,
/// hints, what each backend does with it, and whether the caller reads the answer as <c>PipeReader</c> with
/// <c>useZeroByteReads</c> does (a zero-byte read before each read: issue 19, defect 5).
/// </summary>
internal sealed record RequestStep(Shape Shape, int Deployment, int Cost, int Reference, Spelling Spelling, KeySource Key, int KeyIndex, HintSpec? Hints, Act[] Acts, bool ZeroByteReads) : Step;

/// <summary>A request as sent: what the model needs to judge it.</summary>
internal sealed record ResolvedRequest(HttpMethod Method, string Path, string? Body, long Cost, string? ReferencedId, HintSpec? Hints, string Description)
{
    public override string ToString() => Description;
}

/// <summary>One request in flight, as the model and the fake backends follow it.</summary>
internal sealed class LiveRequest(int id, ResolvedRequest spec, string? partition, string? softKey, Act[] acts, Shape shape, EveryFeatureClock clock)
{
    /// <summary>How many threads run this request's code right now (see <see cref="EveryFeatureClock"/>).</summary>
    public int Running;

    /// <summary>Whether the request's answer has been taken (set by whichever thread completes it).</summary>
    public bool Completed;

    /// <summary>Whether the driver is done with the request's answer: its body read and judged (set last).</summary>
    public bool Finished;

    private int _entries;

    public bool ZeroByteReads { get; init; }

    /// <summary>Gets the clock step at which the request last began to run.</summary>
    public int EnteredAtStep { get; private set; }

    /// <summary>Gets how much later than their release the request's waits resumed, in all.</summary>
    public TimeSpan Lateness { get; private set; }

    /// <summary>Gets a value indicating whether the clock moved since the request began to run: time-based rules cannot judge it.</summary>
    public bool Overlapped => clock.Step != EnteredAtStep;

    public int Id { get; } = id;

    public ResolvedRequest Spec { get; } = spec;

    public Shape Shape { get; } = shape;

    /// <summary>The throttle partition (the Azure deployment), and so the budget key.</summary>
    public string? Partition { get; } = partition;

    public string? SoftKey { get; } = softKey;

    public Act[] Acts { get; } = acts;

    public string? PinnedTo { get; set; }

    public List<ModelCall> Calls { get; } = [];

    public List<(string Backend, HttpResponseMessage Response, EveryFeatureBackends.FakeBody Body)> Responses { get; } = [];

    public DateTimeOffset StartedAt { get; set; }

    public bool Waited { get; set; }

    public bool Cancelled { get; set; }

    public bool ThrottledInThisCall { get; set; }

    /// <summary>The exhausted answer the strategy reported when it made it, if it made one.</summary>
    public ExhaustedSeen? Exhausted { get; set; }

    /// <summary>The id the last backend's answer created (a Responses create answered 200).</summary>
    public string? CreatedId { get; set; }

    public bool Done { get; set; }

    public void Enter()
    {
        if (Interlocked.Increment(ref Running) != 1)
        {
            return;
        }

        EnteredAtStep = clock.Step;
        if (++_entries > 1 && clock.GetUtcNow() - clock.LastFire is { Ticks: > 0 } late)
        {
            // Resumed after a wait later than the timer that released it fired.
            Lateness += late;
        }
    }

    public void Leave() => Interlocked.Decrement(ref Running);
}
