using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis;

/// <summary>
/// The shared reservations of the Redis store (<see cref="PriorityRoutingRedisStoreOptions.Reservations"/>): one
/// <see cref="ReservationScripts.Reserve"/> per attempt, waited for at most <see cref="PriorityRoutingRedisStoreOptions.ReservationTimeout"/>;
/// corrections and releases sent off the caller's path (<see cref="RedisReservationFlush"/>).
/// </summary>
/// <remarks>
/// Fail-open, like the rest of the store: a reservation that Redis does not answer in time, that fails, or that is asked
/// during an outage is <see cref="BackendReservationStatus.Unknown"/>, and the replica's own budget view admits the
/// attempt. Slowness is logged once until Redis answers in time again; <see cref="ConsecutiveTimeoutsForOutage"/> late
/// answers in a row declare an outage (to the one <see cref="RedisOutageState"/>), so that no attempt waits for a hung
/// Redis; a failure declares it at once. The synchronization, not the requests, finds out when Redis is back.
/// </remarks>
internal sealed partial class RedisReservations
{
    /// <summary>Late answers in a row that declare an outage: Redis is hung, not merely slow for a moment.</summary>
    public const int ConsecutiveTimeoutsForOutage = 8;

    /// <summary>How long a budget's running counts outlive its windows: longer than the slowest completion corrects them.</summary>
    public static readonly TimeSpan History = TimeSpan.FromMinutes(3);

    /// <summary>
    /// How long after its moment claimed room waits for its claimant (<see cref="ReservationScripts.Reserve"/>): long
    /// enough for a caller told "retry after N" to come back through any replica, short enough that room nobody redeems
    /// is soon free again. The simulation's counter mirrors it.
    /// </summary>
    public static readonly TimeSpan Grace = TimeSpan.FromSeconds(2);

    /// <summary>How far ahead a refused request looks for a refill where it fits (and claims): beyond, it is told that moment, unclaimed.</summary>
    public static readonly TimeSpan Horizon = TimeSpan.FromSeconds(60);

    /// <summary>The most refills per budget a refused request looks at within <see cref="Horizon"/>: bounds the claim moments of a budget.</summary>
    public const int Refills = 4;

    private readonly RedisConnection _connection;
    private readonly Action _synchronize;
    private readonly RedisStoreLayout _layout;
    private readonly TimeSpan _timeout;
    private readonly long _maxWindowMilliseconds;
    private readonly ILogger _logger;
    private readonly RedisReservationFlush _flush;
    private int _lateInARow;
    private int _slowReported;

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
        _timeout = timeout;
        _maxWindowMilliseconds = (long)maxWindow.TotalMilliseconds;
        _logger = logger;
        _flush = new RedisReservationFlush(connection.WritableWhileShared, connection.Outage, layout, timeProvider, maxWindow, disposing);
    }

    /// <summary>Gets how many corrections, releases and claims given back were sent (a test hook).</summary>
    public long Flushed => _flush.Flushed;

    /// <summary>
    /// Gets or sets the grace this replica's reservations give a claim: <see cref="Grace"/>, or longer in a test that steps
    /// the budget's moments by hand and must not race the real clock between two calls (a test hook).
    /// </summary>
    public TimeSpan ClaimGrace { get; set; } = Grace;

    /// <inheritdoc cref="IBackendReservationStore.ReserveAsync(BackendStateKey, long, double, double, DateTimeOffset, CancellationToken)"/>
    public ValueTask<BackendReservation> ReserveAsync(BackendStateKey key, long cost, double headroom, double promised, DateTimeOffset now, CancellationToken cancellationToken)
        => ReserveAsync(key, cost, headroom, promised, claimant: 0, now, cancellationToken);

    /// <inheritdoc cref="IBackendReservationStore.ReserveAsync(BackendStateKey, long, double, double, long, DateTimeOffset, CancellationToken)"/>
    public ValueTask<BackendReservation> ReserveAsync(BackendStateKey key, long cost, double headroom, double promised, long claimant, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (!StateKeyEncoding.CanEncode(key) || _connection.WritableWhileShared() is not { } multiplexer)
        {
            return new(BackendReservation.Unknown(key, cost, now, 0, 0));
        }

        // The claims and the claimant's record share the budget's hash tag: one slot, so the script runs on a cluster.
        var budget = _layout.ReservationKeyOf(key);
        RedisKey[] keys = claimant == 0
            ? [budget, RedisStoreLayout.ClaimsKeyOf(budget), RedisStoreLayout.FlowClaimsKeyOf(budget)]
            : [budget, RedisStoreLayout.ClaimsKeyOf(budget), RedisStoreLayout.FlowClaimsKeyOf(budget), RedisStoreLayout.ClaimantKeyOf(budget, claimant)];
        var call = multiplexer.GetDatabase().ScriptEvaluateAsync(
            ReservationScripts.Reserve,
            keys,
            [
                Math.Max(0, cost), Math.Clamp(headroom, 0, 1), (long)History.TotalMilliseconds, _maxWindowMilliseconds, Math.Clamp(promised, 0, 1),
                (long)ClaimGrace.TotalMilliseconds, (long)Horizon.TotalMilliseconds, Refills,
            ]);
        return WaitAsync(call, key, cost, claimant, now, cancellationToken);
    }

    /// <summary>
    /// Gives back the claim <paramref name="claimant"/> holds on <paramref name="key"/>'s budget, off the caller's path
    /// (<see cref="RedisReservationFlush.Unclaim"/>, bounded: a claim dropped there is free again when its grace ends).
    /// </summary>
    public void ReleaseClaim(BackendStateKey key, long claimant) => _flush.Unclaim(key, claimant);

    /// <inheritdoc cref="IBackendReservationStore.Correct"/>
    public void Correct(BackendReservation reservation, BackendReservationReport report) => _flush.Correct(reservation, report);

    /// <inheritdoc cref="IBackendReservationStore.Release"/>
    public void Release(BackendReservation reservation) => _flush.Release(reservation);

    private async ValueTask<BackendReservation> WaitAsync(Task<RedisResult> call, BackendStateKey key, long cost, long claimant, DateTimeOffset now, CancellationToken cancellationToken)
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
            _ = SettleLateAsync(call, key, cost, claimant, now, release: true);
        }
        catch (TimeoutException)
        {
            AnsweredLate();

            // The attempt goes on the replica's own view, and most likely is sent: a late reservation stays counted, and a
            // late claim is given back (nobody will redeem it: the caller was not told to come back).
            _ = SettleLateAsync(call, key, cost, claimant, now, release: false);
        }
        catch (Exception e)
        {
            _connection.Outage.ReportFailure(e);
        }

        return BackendReservation.Unknown(key, cost, now, 0, 0);
    }

    /// <summary>Reads the script's answer; anything unexpected is no verdict.</summary>
    private BackendReservation Read(RedisResult result, BackendStateKey key, long cost, DateTimeOffset now)
    {
        if (result.Resp2Type != ResultType.Array || result.Length < 2 || !TryGetLong(result[0], out var status) || !TryGetLong(result[1], out var first))
        {
            return BackendReservation.Unknown(key, cost, now, 0, 0);
        }

        // A wait is never beyond the longest window or a claim's horizon and grace (whatever a peer wrote, the script's
        // answer must not throw here).
        var wait = TimeSpan.FromMilliseconds(Math.Clamp(first, 1, Math.Max(_maxWindowMilliseconds, (long)(Horizon + ClaimGrace).TotalMilliseconds)));
        if (status == 0)
        {
            return BackendReservation.Refused(key, cost, wait);
        }

        if (status == 3)
        {
            return BackendReservation.Claimed(key, cost, wait);
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

    /// <summary>
    /// Observes a reservation nobody waits for any more: given back when asked to, its claim always (nobody was told to
    /// come back for it), and never unobserved.
    /// </summary>
    private async Task SettleLateAsync(Task<RedisResult> call, BackendStateKey key, long cost, long claimant, DateTimeOffset now, bool release)
    {
        try
        {
            var reservation = Read(await call.ConfigureAwait(false), key, cost, now);
            if (reservation.HoldsClaim)
            {
                ReleaseClaim(key, claimant);
            }
            else if (release)
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
    private static partial class Log
    {
        [LoggerMessage(7, LogLevel.Warning,
            "Redis did not answer a reservation within {TimeoutMilliseconds} ms: attempts are admitted by this replica's own budget view until it answers in time again.")]
        public static partial void ReservationsLate(ILogger logger, long timeoutMilliseconds);

        [LoggerMessage(8, LogLevel.Information, "Redis answers reservations in time again: attempts reserve in the shared budgets.")]
        public static partial void ReservationsInTime(ILogger logger);
    }
}
