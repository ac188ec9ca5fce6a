namespace PriorityRouting.Simulation.Routers;

/// <summary>
/// The reservation budget "ours (reserved)" holds in the shared store (Redis, in the library to come), one per backend,
/// shared by every replica: an admission reserves its estimated cost atomically before the request is sent; what
/// answers report (remaining, limit, reset — measured from when the request was sent) seeds and corrects it.
/// </summary>
/// <remarks>
/// Like the library's budget view, a budget is taken as full again at its reset (a step); the window it advances by is
/// the longest reset delay ever reported. A report corrects the count to what the backend had spent when it admitted the
/// request plus what was reserved since, so an answer that arrives seconds late loses nothing reserved meanwhile. Until
/// a backend has reported a budget, everything is admitted (nothing is known: fail open). Bounded: per backend, the
/// reservations of the last <see cref="History"/> only.
/// </remarks>
internal sealed class SharedReservationCounter
{
    /// <summary>How long reservations are remembered to correct the count with a late answer (longer than any completion).</summary>
    public static readonly TimeSpan History = TimeSpan.FromMinutes(3);

    /// <summary>How far apart two reset moments may be and still describe one window.</summary>
    private static readonly TimeSpan SameWindow = TimeSpan.FromMilliseconds(50);

    private readonly Dictionary<string, Budget> _budgets = new(StringComparer.OrdinalIgnoreCase);
    private readonly TimeSpan? _maxAnswerDelay;

    /// <param name="maxAnswerDelay">
    /// <see langword="null"/>: a report is taken as the backend's state when it admitted the request, its reset measured
    /// from the send. Otherwise only answers that arrive within this delay of their send correct the counter, their reset
    /// measured from their arrival (the later of the two readings): right whichever moment the backend reports.
    /// </param>
    public SharedReservationCounter(TimeSpan? maxAnswerDelay = null) => _maxAnswerDelay = maxAnswerDelay;

    /// <summary>Gets how many admissions the counter refused.</summary>
    public long Refused { get; private set; }

    /// <summary>Reserves <paramref name="cost"/> on <paramref name="backend"/>, or tells how long until its budget refills.</summary>
    public bool TryReserve(string backend, long cost, DateTimeOffset now, out TimeSpan retryAfter)
    {
        var budget = GetOrAdd(backend);
        budget.Roll(now);
        budget.Prune(now);

        // A request larger than the whole budget is the backend's to judge.
        if (budget.Limit >= 0 && budget.WindowEnd > now && budget.Reserved + cost > budget.Limit && cost <= budget.Limit)
        {
            Refused++;
            retryAfter = budget.WindowEnd - now;
            return false;
        }

        budget.Reserved += cost;
        budget.Recent.Enqueue((now, cost));
        retryAfter = TimeSpan.Zero;
        return true;
    }

    /// <summary>Returns what is left of <paramref name="backend"/>'s budget now, and until when; <see langword="false"/> when nothing is known.</summary>
    public bool TryGetAvailable(string backend, DateTimeOffset now, out long available, out DateTimeOffset resetAt)
    {
        var budget = GetOrAdd(backend);
        budget.Roll(now);
        available = Math.Max(0, budget.Limit - budget.Reserved);
        resetAt = budget.WindowEnd;
        return budget.Limit >= 0 && budget.WindowEnd > now;
    }

    /// <summary>The backend refused a reserved request (a 429): its cost was not spent.</summary>
    public void Release(string backend, long cost)
    {
        var budget = GetOrAdd(backend);
        budget.Reserved = Math.Max(0, budget.Reserved - cost);
    }

    /// <summary>
    /// Corrects the count with what an answer reported: <paramref name="remaining"/> of <paramref name="limit"/> until
    /// <paramref name="resetIn"/> after <paramref name="sentAt"/> (or <paramref name="arrivedAt"/>, see the constructor),
    /// for a request reserved at <paramref name="reservedAt"/>.
    /// </summary>
    public void Correct(string backend, long remaining, long limit, TimeSpan resetIn, DateTimeOffset reservedAt, DateTimeOffset sentAt, DateTimeOffset arrivedAt, DateTimeOffset now)
    {
        var budget = GetOrAdd(backend);
        budget.Limit = limit;
        if (resetIn > budget.LongestReset)
        {
            budget.LongestReset = resetIn;
        }

        if (arrivedAt - sentAt > _maxAnswerDelay)
        {
            return;
        }

        var resetAt = (_maxAnswerDelay is null ? sentAt : arrivedAt) + resetIn;
        var sameWindow = SameWindow + (_maxAnswerDelay ?? TimeSpan.Zero);
        budget.Roll(now);
        if (resetAt <= now)
        {
            // The window it describes is over.
            return;
        }

        var reservedSince = 0L;
        foreach (var (at, cost) in budget.Recent)
        {
            reservedSince += at > reservedAt ? cost : 0;
        }

        var reserved = limit - remaining + reservedSince;
        budget.ObserveReset(resetAt, sameWindow);
        if (budget.WindowEnd == default || resetAt > budget.WindowEnd + sameWindow)
        {
            // A window the counter had only assumed (or a continuous budget's later "full" moment): the report is the truth.
            budget.WindowEnd = resetAt;
            budget.Reserved = reserved;
        }
        else if (resetAt >= budget.WindowEnd - sameWindow)
        {
            budget.WindowEnd = resetAt;
            budget.Reserved = Math.Max(budget.Reserved, reserved);
        }
    }

    private Budget GetOrAdd(string backend)
    {
        if (!_budgets.TryGetValue(backend, out var budget))
        {
            _budgets[backend] = budget = new Budget();
        }

        return budget;
    }

    private sealed class Budget
    {
        public long Limit { get; set; } = -1;

        /// <summary>
        /// Gets the refill window: the shortest gap between the reset moments of two windows reported one after the
        /// other (a gap shorter than a reported reset delay is one window seen twice), else the longest reset delay
        /// reported, which falls short of the window by the time the window's first request came after its refill.
        /// </summary>
        public TimeSpan Window => _gap ?? LongestReset;

        public TimeSpan LongestReset { get; set; }

        public DateTimeOffset WindowEnd { get; set; }

        public long Reserved { get; set; }

        public Queue<(DateTimeOffset At, long Cost)> Recent { get; } = new();

        private TimeSpan? _gap;
        private DateTimeOffset _lastReset;

        public void ObserveReset(DateTimeOffset resetAt, TimeSpan sameWindow)
        {
            var gap = resetAt - _lastReset;
            if (_lastReset != default && gap > sameWindow && gap >= LongestReset && (_gap is null || gap < _gap))
            {
                _gap = gap;
            }

            if (resetAt > _lastReset)
            {
                _lastReset = resetAt;
            }
        }

        /// <summary>At the reset the budget is full again; the next reset is one window later.</summary>
        public void Roll(DateTimeOffset now)
        {
            if (WindowEnd == default || now < WindowEnd)
            {
                return;
            }

            Reserved = 0;
            if (Window <= TimeSpan.Zero)
            {
                WindowEnd = default;
                return;
            }

            while (WindowEnd <= now)
            {
                WindowEnd += Window;
            }
        }

        public void Prune(DateTimeOffset now)
        {
            while (Recent.TryPeek(out var oldest) && oldest.At < now - History)
            {
                Recent.Dequeue();
            }
        }
    }
}
