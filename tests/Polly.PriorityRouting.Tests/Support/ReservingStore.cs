using System.Collections.Concurrent;

namespace Polly.PriorityRouting.Tests.Support;

/// <summary>
/// A store with shared reservations whose answers a test scripts per backend host (granted by default), and that
/// records every reservation, correction and release it is given.
/// </summary>
internal sealed class ReservingStore : IBackendStateStore, IBackendReservationStore
{
    private readonly ConcurrentDictionary<string, Func<BackendStateKey, long, DateTimeOffset, CancellationToken, ValueTask<BackendReservation>>> _answers = new();
    private readonly ConcurrentDictionary<string, Func<BackendStateKey, long, long, DateTimeOffset, BackendReservation>> _claimAnswers = new();
    private long _sequence;

    public InMemoryBackendStateStore Marks { get; } = new();

    public ConcurrentQueue<BackendReservation> Reserved { get; } = new();

    /// <summary>Gets the headroom each reservation asked for, in order.</summary>
    public ConcurrentQueue<double> Headrooms { get; } = new();

    /// <summary>Gets the claimant each reservation named (0: none), in order.</summary>
    public ConcurrentQueue<long> Claimants { get; } = new();

    /// <summary>Gets the share promised to foreground callers each reservation was asked to leave free, in order.</summary>
    public ConcurrentQueue<double> Promised { get; } = new();

    public ConcurrentQueue<(BackendReservation Reservation, BackendReservationReport Report)> Corrected { get; } = new();

    public ConcurrentQueue<BackendReservation> Released { get; } = new();

    /// <summary>Gets every claim given back (<see cref="IBackendReservationStore.ReleaseClaim"/>), in order.</summary>
    public ConcurrentQueue<(BackendStateKey Key, long Claimant)> ReleasedClaims { get; } = new();

    public void ReleaseClaim(BackendStateKey key, long claimant) => ReleasedClaims.Enqueue((key, claimant));

    public ReservingStore Refuse(string host, TimeSpan retryAfter)
        => Answer(host, (key, cost, _, _) => new(BackendReservation.Refused(key, cost, retryAfter)));

    public ReservingStore Unknown(string host)
        => Answer(host, (key, cost, now, _) => new(BackendReservation.Unknown(key, cost, now, 0, 0)));

    public ReservingStore Fail(string host)
        => Answer(host, (_, _, _, _) => ValueTask.FromException<BackendReservation>(new InvalidOperationException("the store is down")));

    public ReservingStore Answer(string host, Func<BackendStateKey, long, DateTimeOffset, CancellationToken, ValueTask<BackendReservation>> answer)
    {
        _answers[host] = answer;
        return this;
    }

    /// <summary>Answers the host's reservations with a rule of the claimant (the request's fingerprint) too.</summary>
    public ReservingStore AnswerClaimant(string host, Func<BackendStateKey, long, long, DateTimeOffset, BackendReservation> answer)
    {
        _claimAnswers[host] = answer;
        return this;
    }

    public ReservingStore Grant(string host)
    {
        _answers.TryRemove(host, out _);
        _claimAnswers.TryRemove(host, out _);
        return this;
    }

    /// <summary>The strategy's call: records the claimant, then answers as scripted.</summary>
    public ValueTask<BackendReservation> ReserveAsync(BackendStateKey key, long cost, double headroom, double promised, long claimant, DateTimeOffset now, CancellationToken cancellationToken)
    {
        Claimants.Enqueue(claimant);
        if (_claimAnswers.TryGetValue(HostOf(key), out var answer))
        {
            Headrooms.Enqueue(headroom);
            Promised.Enqueue(promised);
            var reservation = answer(key, cost, claimant, now);
            Reserved.Enqueue(reservation);
            return new(reservation);
        }

        return ReserveAsync(key, cost, headroom, promised, now, cancellationToken);
    }

    public async ValueTask<BackendReservation> ReserveAsync(BackendStateKey key, long cost, double headroom, double promised, DateTimeOffset now, CancellationToken cancellationToken)
    {
        Headrooms.Enqueue(headroom);
        Promised.Enqueue(promised);
        var reservation = _answers.TryGetValue(HostOf(key), out var answer)
            ? await answer(key, cost, now, cancellationToken)
            : BackendReservation.Granted(key, cost, now, Interlocked.Increment(ref _sequence), 1);
        Reserved.Enqueue(reservation);
        return reservation;
    }

    public void Correct(BackendReservation reservation, BackendReservationReport report) => Corrected.Enqueue((reservation, report));

    private static string HostOf(BackendStateKey key) => new Uri(key.Backend[(key.Backend.IndexOf('@') + 1)..]).Host;

    public void Release(BackendReservation reservation) => Released.Enqueue(reservation);

    public bool TryGetUnavailability(BackendStateKey key, out BackendUnavailability unavailability) => Marks.TryGetUnavailability(key, out unavailability);

    public ValueTask MarkUnavailableAsync(BackendStateKey key, BackendUnavailability unavailability, DateTimeOffset now, CancellationToken cancellationToken)
        => Marks.MarkUnavailableAsync(key, unavailability, now, cancellationToken);

    public IReadOnlyList<KeyValuePair<BackendStateKey, BackendUnavailability>> GetEntries(string backend) => Marks.GetEntries(backend);
}
