using System.Collections.Concurrent;

namespace Polly.PriorityRouting.Tests.Support;

/// <summary>
/// A store with shared reservations whose answers a test scripts per backend host (granted by default), and that
/// records every reservation, correction and release it is given.
/// </summary>
internal sealed class ReservingStore : IBackendStateStore, IBackendReservationStore
{
    private readonly ConcurrentDictionary<string, Func<BackendStateKey, long, DateTimeOffset, CancellationToken, ValueTask<BackendReservation>>> _answers = new();
    private long _sequence;

    public InMemoryBackendStateStore Marks { get; } = new();

    public ConcurrentQueue<BackendReservation> Reserved { get; } = new();

    /// <summary>Gets the headroom each reservation asked for, in order.</summary>
    public ConcurrentQueue<double> Headrooms { get; } = new();

    /// <summary>Gets the share promised to foreground callers each reservation was asked to leave free, in order.</summary>
    public ConcurrentQueue<double> Promised { get; } = new();

    public ConcurrentQueue<(BackendReservation Reservation, BackendReservationReport Report)> Corrected { get; } = new();

    public ConcurrentQueue<BackendReservation> Released { get; } = new();

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

    public ReservingStore Grant(string host)
    {
        _answers.TryRemove(host, out _);
        return this;
    }

    public async ValueTask<BackendReservation> ReserveAsync(BackendStateKey key, long cost, double headroom, double promised, DateTimeOffset now, CancellationToken cancellationToken)
    {
        Headrooms.Enqueue(headroom);
        Promised.Enqueue(promised);
        var host = new Uri(key.Backend[(key.Backend.IndexOf('@') + 1)..]).Host;
        var reservation = _answers.TryGetValue(host, out var answer)
            ? await answer(key, cost, now, cancellationToken)
            : BackendReservation.Granted(key, cost, now, Interlocked.Increment(ref _sequence), 1);
        Reserved.Enqueue(reservation);
        return reservation;
    }

    public void Correct(BackendReservation reservation, BackendReservationReport report) => Corrected.Enqueue((reservation, report));

    public void Release(BackendReservation reservation) => Released.Enqueue(reservation);

    public bool TryGetUnavailability(BackendStateKey key, out BackendUnavailability unavailability) => Marks.TryGetUnavailability(key, out unavailability);

    public ValueTask MarkUnavailableAsync(BackendStateKey key, BackendUnavailability unavailability, DateTimeOffset now, CancellationToken cancellationToken)
        => Marks.MarkUnavailableAsync(key, unavailability, now, cancellationToken);

    public IReadOnlyList<KeyValuePair<BackendStateKey, BackendUnavailability>> GetEntries(string backend) => Marks.GetEntries(backend);
}
