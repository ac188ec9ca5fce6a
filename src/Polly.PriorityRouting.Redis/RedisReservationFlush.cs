using System.Collections.Concurrent;
using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis;

/// <summary>
/// The reservations' corrections, releases and claims given back, sent off the caller's path: what comes while a flush
/// runs goes with the next one, pipelined (<see cref="ReservationScripts.Correct"/>, <see cref="ReservationScripts.Release"/>,
/// <see cref="ReservationScripts.Unclaim"/>).
/// </summary>
/// <remarks>
/// Bounded: at most <see cref="MaxPending"/> keys wait with a correction (the latest reservation's of each key
/// supersedes the earlier: its count is the newest), <see cref="MaxPending"/> releases and <see cref="MaxPending"/>
/// claims to give back; beyond, they are dropped — a dropped correction is made by the next answer, a dropped release
/// is given back at the window's refill, a dropped claim when its grace ends. A flush while the budgets may not be
/// written drops them likewise.
/// </remarks>
internal sealed class RedisReservationFlush
{
    public const int MaxPending = 4096;

    /// <summary>How far apart two reset moments may be and still describe one window (answers' resets are whole milliseconds, measured on two clocks).</summary>
    public static readonly TimeSpan SameWindow = TimeSpan.FromMilliseconds(100);

    private readonly Func<IConnectionMultiplexer?> _available;
    private readonly RedisOutageState _outage;
    private readonly RedisStoreLayout _layout;
    private readonly TimeProvider _timeProvider;
    private readonly long _maxWindowMilliseconds;
    private readonly CancellationToken _disposing;
    private readonly ConcurrentDictionary<BackendStateKey, (BackendReservation Reservation, BackendReservationReport Report)> _corrections = new();
    private readonly ConcurrentQueue<BackendReservation> _releases = new();
    private readonly ConcurrentQueue<(BackendStateKey Key, long Claimant)> _unclaims = new();
    private int _correctionCount;
    private int _releaseCount;
    private int _unclaimCount;
    private int _flushScheduled;
    private long _flushed;

    /// <param name="available">The multiplexer when the shared budgets may be written now, or <see langword="null"/>.</param>
    /// <param name="outage">Where a failed flush is reported.</param>
    /// <param name="layout">The store's keys.</param>
    /// <param name="timeProvider">The store's clock, which dates the corrections.</param>
    /// <param name="maxWindow">The longest budget window: bounds every duration sent.</param>
    /// <param name="disposing">Cancelled when the store is disposed: no flush is scheduled after.</param>
    public RedisReservationFlush(
        Func<IConnectionMultiplexer?> available,
        RedisOutageState outage,
        RedisStoreLayout layout,
        TimeProvider timeProvider,
        TimeSpan maxWindow,
        CancellationToken disposing)
    {
        _available = available;
        _outage = outage;
        _layout = layout;
        _timeProvider = timeProvider;
        _maxWindowMilliseconds = (long)maxWindow.TotalMilliseconds;
        _disposing = disposing;
    }

    /// <summary>Gets how many corrections, releases and claims to give back wait to be sent.</summary>
    public int PendingCount => Volatile.Read(ref _correctionCount) + Volatile.Read(ref _releaseCount) + Volatile.Read(ref _unclaimCount);

    /// <summary>Gets how many corrections, releases and claims given back were sent (a test hook).</summary>
    public long Flushed => Interlocked.Read(ref _flushed);

    /// <inheritdoc cref="IBackendReservationStore.Correct"/>
    public void Correct(BackendReservation reservation, BackendReservationReport report)
    {
        if (!reservation.IsCounted || !StateKeyEncoding.CanEncode(reservation.Key))
        {
            return;
        }

        // Update or add, never a blind set (see RedisBudgetChannel.Publish): the count must not drift.
        while (true)
        {
            if (_corrections.TryGetValue(reservation.Key, out var kept))
            {
                if (kept.Reservation.Sequence > reservation.Sequence || _corrections.TryUpdate(reservation.Key, (reservation, report), kept))
                {
                    break;
                }

                continue;
            }

            if (Volatile.Read(ref _correctionCount) >= MaxPending)
            {
                return;
            }

            if (_corrections.TryAdd(reservation.Key, (reservation, report)))
            {
                Interlocked.Increment(ref _correctionCount);
                break;
            }
        }

        ScheduleFlush();
    }

    /// <inheritdoc cref="IBackendReservationStore.Release"/>
    public void Release(BackendReservation reservation)
    {
        if (!reservation.IsCounted || !StateKeyEncoding.CanEncode(reservation.Key))
        {
            return;
        }

        if (Interlocked.Increment(ref _releaseCount) > MaxPending)
        {
            Interlocked.Decrement(ref _releaseCount);
            return;
        }

        _releases.Enqueue(reservation);
        ScheduleFlush();
    }

    /// <summary>
    /// Gives back the claim <paramref name="claimant"/> holds on <paramref name="key"/>'s budget: one made for a
    /// reservation whose answer came after nobody waited for it.
    /// </summary>
    public void Unclaim(BackendStateKey key, long claimant)
    {
        if (claimant == 0 || !StateKeyEncoding.CanEncode(key))
        {
            return;
        }

        if (Interlocked.Increment(ref _unclaimCount) > MaxPending)
        {
            Interlocked.Decrement(ref _unclaimCount);
            return;
        }

        _unclaims.Enqueue((key, claimant));
        ScheduleFlush();
    }

    private void ScheduleFlush()
    {
        if (Interlocked.CompareExchange(ref _flushScheduled, 1, 0) == 0)
        {
            _ = Task.Run(FlushAsync);
        }
    }

    private async Task FlushAsync()
    {
        try
        {
            await SendPendingAsync().ConfigureAwait(false);
        }
        catch (Exception e)
        {
            // Nobody awaits this task: a failure is an outage, never a request's.
            _outage.ReportFailure(e);
        }
        finally
        {
            Volatile.Write(ref _flushScheduled, 0);
        }

        // What came while this flush ran goes with the next one, together: that is the coalescing.
        if (PendingCount > 0 && !_disposing.IsCancellationRequested)
        {
            ScheduleFlush();
        }
    }

    private async Task SendPendingAsync()
    {
        var multiplexer = _available();
        var database = multiplexer?.GetDatabase();
        List<Task>? sent = null;
        var now = _timeProvider.GetUtcNow();
        foreach (var (key, pending) in _corrections)
        {
            if (!_corrections.TryRemove(new KeyValuePair<BackendStateKey, (BackendReservation, BackendReservationReport)>(key, pending)))
            {
                // Replaced meanwhile: the newer one goes with the next flush.
                continue;
            }

            Interlocked.Decrement(ref _correctionCount);
            if (database is not null)
            {
                (sent ??= []).Add(database.ScriptEvaluateAsync(ReservationScripts.Correct, [_layout.ReservationKeyOf(key)], CorrectionArguments(pending.Reservation, pending.Report, now)));
            }
        }

        while (_releases.TryDequeue(out var reservation))
        {
            Interlocked.Decrement(ref _releaseCount);
            if (database is not null)
            {
                (sent ??= []).Add(database.ScriptEvaluateAsync(
                    ReservationScripts.Release,
                    [_layout.ReservationKeyOf(reservation.Key)],
                    [reservation.Sequence, reservation.Offset, (long)RedisReservations.History.TotalMilliseconds, _maxWindowMilliseconds, reservation.Cost]));
            }
        }

        while (_unclaims.TryDequeue(out var unclaim))
        {
            Interlocked.Decrement(ref _unclaimCount);
            if (database is not null)
            {
                var budget = _layout.ReservationKeyOf(unclaim.Key);
                (sent ??= []).Add(database.ScriptEvaluateAsync(
                    ReservationScripts.Unclaim,
                    [budget, RedisStoreLayout.ClaimsKeyOf(budget), RedisStoreLayout.FlowClaimsKeyOf(budget), RedisStoreLayout.ClaimantKeyOf(budget, unclaim.Claimant)]));
            }
        }

        if (sent is not null)
        {
            // Pipelined: every script is on the wire before the first answer is awaited.
            await Task.WhenAll(sent).ConfigureAwait(false);
            Interlocked.Add(ref _flushed, sent.Count);
        }
    }

    /// <summary>The resets as milliseconds from now (measured from the send, on this replica's clock); the counts as reported.</summary>
    private RedisValue[] CorrectionArguments(BackendReservation reservation, BackendReservationReport report, DateTimeOffset now)
    {
        // Bounded before any arithmetic: a report is the caller's, and no value of it may throw here.
        var sentAgo = Math.Clamp((long)Math.Ceiling((now - report.SentAt).TotalMilliseconds), 0, _maxWindowMilliseconds);
        var tokensReset = Milliseconds(report.TokensResetAfter);
        var requestsReset = Milliseconds(report.RequestsResetAfter);
        return
        [
            reservation.Sequence, reservation.Offset, (long)RedisReservations.History.TotalMilliseconds, _maxWindowMilliseconds, (long)SameWindow.TotalMilliseconds,
            report.RemainingTokens ?? -1, report.LimitTokens ?? -1, tokensReset - sentAgo, tokensReset,
            report.RemainingRequests ?? -1, report.LimitRequests ?? -1, requestsReset - sentAgo, requestsReset,
        ];

        long Milliseconds(TimeSpan delay) => Math.Clamp((long)Math.Ceiling(delay.TotalMilliseconds), 0, _maxWindowMilliseconds);
    }
}
