using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis;

/// <summary>
/// The shared reservations of the Redis store (<see cref="PriorityRoutingRedisStoreOptions.Reservations"/>): one
/// <see cref="ReservationScripts.Reserve"/> per attempt, waited for at most <see cref="PriorityRoutingRedisStoreOptions.ReservationTimeout"/>;
/// corrections and releases sent off the caller's path.
/// </summary>
/// <remarks>
/// <para>
/// Fail-open, like the rest of the store: a reservation that Redis does not answer in time, that fails, or that is asked
/// during an outage is <see cref="BackendReservationStatus.Unknown"/>, and the replica's own budget view admits the
/// attempt. Slowness is logged once until Redis answers in time again; <see cref="ConsecutiveTimeoutsForOutage"/> late
/// answers in a row declare an outage (to the one <see cref="RedisOutageState"/>), so that no attempt waits for a hung
/// Redis; a failure declares it at once. The synchronization, not the requests, finds out when Redis is back.
/// </para>
/// <para>
/// Bounded: at most <see cref="MaxPending"/> keys wait with a correction (the latest reservation's of each key
/// supersedes the earlier: its count is the newest) and <see cref="MaxPending"/> releases; beyond, they are dropped —
/// a dropped correction is made by the next answer, a dropped release is given back at the window's refill.
/// </para>
/// </remarks>
internal sealed partial class RedisReservations
{
    public const int MaxPending = 4096;

    /// <summary>Late answers in a row that declare an outage: Redis is hung, not merely slow for a moment.</summary>
    public const int ConsecutiveTimeoutsForOutage = 8;

    /// <summary>How long a budget's running counts outlive its windows: longer than the slowest completion corrects them.</summary>
    public static readonly TimeSpan History = TimeSpan.FromMinutes(3);

    /// <summary>How far apart two reset moments may be and still describe one window (answers' resets are whole milliseconds, measured on two clocks).</summary>
    public static readonly TimeSpan SameWindow = TimeSpan.FromMilliseconds(100);

    private readonly RedisConnection _connection;
    private readonly Action _synchronize;
    private readonly RedisStoreLayout _layout;
    private readonly TimeProvider _timeProvider;
    private readonly TimeSpan _timeout;
    private readonly long _maxWindowMilliseconds;
    private readonly ILogger _logger;
    private readonly CancellationToken _disposing;
    private readonly ConcurrentDictionary<BackendStateKey, (BackendReservation Reservation, BackendReservationReport Report)> _corrections = new();
    private readonly ConcurrentQueue<BackendReservation> _releases = new();
    private int _correctionCount;
    private int _releaseCount;
    private int _flushScheduled;
    private int _lateInARow;
    private int _slowReported;
    private long _flushed;

    public RedisReservations(
        RedisConnection connection,
        Action synchronize,
        RedisStoreLayout layout,
        TimeProvider timeProvider,
        TimeSpan timeout,
        TimeSpan maxWindow,
        ILogger logger,
        CancellationToken disposing)
    {
        _connection = connection;
        _synchronize = synchronize;
        _layout = layout;
        _timeProvider = timeProvider;
        _timeout = timeout;
        _maxWindowMilliseconds = (long)maxWindow.TotalMilliseconds;
        _logger = logger;
        _disposing = disposing;
    }

    /// <summary>Gets how many corrections and releases wait to be sent (a test hook).</summary>
    public int PendingCount => Volatile.Read(ref _correctionCount) + Volatile.Read(ref _releaseCount);

    /// <summary>Gets how many corrections and releases were sent (a test hook).</summary>
    public long Flushed => Interlocked.Read(ref _flushed);

    /// <inheritdoc cref="IBackendReservationStore.ReserveAsync"/>
    public ValueTask<BackendReservation> ReserveAsync(BackendStateKey key, long cost, double headroom, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (!StateKeyEncoding.CanEncode(key) || Available() is not { } multiplexer)
        {
            return new(BackendReservation.Unknown(key, cost, now, 0, 0));
        }

        var call = multiplexer.GetDatabase().ScriptEvaluateAsync(
            ReservationScripts.Reserve,
            [_layout.ReservationKeyOf(key)],
            [Math.Max(0, cost), Math.Clamp(headroom, 0, 1), (long)History.TotalMilliseconds, _maxWindowMilliseconds]);
        return WaitAsync(call, key, cost, now, cancellationToken);
    }

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

    private async ValueTask<BackendReservation> WaitAsync(Task<RedisResult> call, BackendStateKey key, long cost, DateTimeOffset now, CancellationToken cancellationToken)
    {
        try
        {
            // Real time, not the store's TimeProvider: this bounds a network call, it measures no deadline.
            var result = await call.WaitAsync(_timeout, cancellationToken).ConfigureAwait(false);
            AnsweredInTime();
            return Read(result, key, cost, now);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The caller gave up: a reservation Redis makes anyway (or made just as the caller cancelled) is given back
            // when it comes. Never Redis's failure.
            _ = SettleLateAsync(call, key, cost, now, release: true);
        }
        catch (TimeoutException)
        {
            AnsweredLate();

            // The attempt goes on the replica's own view, and most likely is sent: a late reservation stays counted.
            _ = SettleLateAsync(call, key, cost, now, release: false);
        }
        catch (Exception e)
        {
            _connection.Outage.ReportFailure(e);
        }

        return BackendReservation.Unknown(key, cost, now, 0, 0);
    }

    /// <summary>Reads the script's answer; anything unexpected is no verdict.</summary>
    private static BackendReservation Read(RedisResult result, BackendStateKey key, long cost, DateTimeOffset now)
    {
        if (result.Resp2Type != ResultType.Array || result.Length < 2 || !TryGetLong(result[0], out var status) || !TryGetLong(result[1], out var first))
        {
            return BackendReservation.Unknown(key, cost, now, 0, 0);
        }

        if (status == 0)
        {
            return BackendReservation.Refused(key, cost, TimeSpan.FromMilliseconds(first));
        }

        if (result.Length < 3 || !TryGetLong(result[2], out var offset) || first <= 0)
        {
            return BackendReservation.Unknown(key, cost, now, 0, 0);
        }

        return status == 1 ? BackendReservation.Granted(key, cost, now, first, offset) : BackendReservation.Unknown(key, cost, now, first, offset);
    }

    private static bool TryGetLong(RedisResult result, out long value)
    {
        value = 0;
        if (result.IsNull || result.Resp2Type != ResultType.Integer)
        {
            return false;
        }

        value = (long)result;
        return true;
    }

    /// <summary>Observes a reservation nobody waits for any more: given back when asked to, and never unobserved.</summary>
    private async Task SettleLateAsync(Task<RedisResult> call, BackendStateKey key, long cost, DateTimeOffset now, bool release)
    {
        try
        {
            var reservation = Read(await call.ConfigureAwait(false), key, cost, now);
            if (release)
            {
                Release(reservation);
            }
        }
        catch (Exception e)
        {
            _connection.Outage.ReportFailure(e);
        }
    }

    private void AnsweredInTime()
    {
        Volatile.Write(ref _lateInARow, 0);
        if (Interlocked.Exchange(ref _slowReported, 0) == 1)
        {
            Log.ReservationsInTime(_logger);
        }

        if (_connection.Outage.IsUnshared)
        {
            // Redis answered although the store believed it gone: synchronize, which ends the outage.
            _synchronize();
        }
    }

    private void AnsweredLate()
    {
        if (Interlocked.Exchange(ref _slowReported, 1) == 0)
        {
            Log.ReservationsLate(_logger, (long)_timeout.TotalMilliseconds);
        }

        if (Interlocked.Increment(ref _lateInARow) >= ConsecutiveTimeoutsForOutage)
        {
            Volatile.Write(ref _lateInARow, 0);
            _connection.Outage.ReportLastingFailure(new TimeoutException($"Redis did not answer {ConsecutiveTimeoutsForOutage} reservations in a row within {_timeout.TotalMilliseconds} ms."));
        }
    }

    /// <summary>
    /// The multiplexer when an attempt may use it: no failure since the state was last shared, and no split
    /// (<see cref="RedisConnection.Writable"/>: a reservation counted on a returning old primary would be lost with it).
    /// </summary>
    private IConnectionMultiplexer? Available() => _connection.Outage.IsUnshared ? null : _connection.Writable();

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
            _connection.Outage.ReportFailure(e);
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
        var multiplexer = Available();
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
                    [reservation.Sequence, reservation.Offset, (long)History.TotalMilliseconds, _maxWindowMilliseconds, reservation.Cost]));
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
            reservation.Sequence, reservation.Offset, (long)History.TotalMilliseconds, _maxWindowMilliseconds, (long)SameWindow.TotalMilliseconds,
            report.RemainingTokens ?? -1, report.LimitTokens ?? -1, tokensReset - sentAgo, tokensReset,
            report.RemainingRequests ?? -1, report.LimitRequests ?? -1, requestsReset - sentAgo, requestsReset,
        ];

        long Milliseconds(TimeSpan delay) => Math.Clamp((long)Math.Ceiling(delay.TotalMilliseconds), 0, _maxWindowMilliseconds);
    }

    private static partial class Log
    {
        [LoggerMessage(7, LogLevel.Warning,
            "Redis did not answer a reservation within {TimeoutMilliseconds} ms: attempts are admitted by this replica's own budget view until it answers in time again.")]
        public static partial void ReservationsLate(ILogger logger, long timeoutMilliseconds);

        [LoggerMessage(8, LogLevel.Information, "Redis answers reservations in time again: attempts reserve in the shared budgets.")]
        public static partial void ReservationsInTime(ILogger logger);
    }
}
