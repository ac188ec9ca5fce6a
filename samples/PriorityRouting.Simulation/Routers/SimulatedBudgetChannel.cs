using Microsoft.Extensions.Time.Testing;
using Polly.PriorityRouting;

namespace PriorityRouting.Simulation.Routers;

/// <summary>
/// The budget observations the Redis store carries between replicas, on the virtual clock: each replica publishes at
/// once when it has published nothing for <see cref="SimulationSettings.BudgetPublishInterval"/>, else the latest
/// observation per key at the end of that interval; every other replica receives it
/// <see cref="SimulationSettings.BudgetDelay"/> later.
/// </summary>
internal sealed class SimulatedBudgetChannel
{
    /// <summary>How long a replica that published counts as a peer.</summary>
    public static readonly TimeSpan PeerLifetime = TimeSpan.FromMinutes(1);

    private readonly FakeTimeProvider _time;
    private readonly TimeSpan _interval;
    private readonly TimeSpan _delay;
    private readonly List<Replica> _replicas = [];
    private readonly ITimer _timer;
    private readonly PriorityQueue<(int From, BackendStateKey Key, BackendBudgetObservation Observation), (DateTimeOffset Due, long Sequence)> _inFlight = new();
    private long _sequence;

    public SimulatedBudgetChannel(FakeTimeProvider time, TimeSpan interval, TimeSpan delay)
    {
        _time = time;
        _interval = interval;
        _delay = delay;

        // Every virtual millisecond: flushes due and deliveries due (the driver sends only between its steps, so finer
        // would change nothing). Held in a field: the fake clock does not keep an unreferenced timer alive.
        _timer = time.CreateTimer(_ => Tick(), null, TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(1));
    }

    /// <summary>Gets how many messages the replicas published (one per key per flush).</summary>
    public long Published { get; private set; }

    public int Join()
    {
        _replicas.Add(new Replica());
        return _replicas.Count - 1;
    }

    /// <summary>Returns how many other replicas published within <see cref="PeerLifetime"/>, as the Redis store counts its peers.</summary>
    public int PeersOf(int replica)
    {
        var since = _time.GetUtcNow() - PeerLifetime;
        var peers = 0;
        for (var other = 0; other < _replicas.Count; other++)
        {
            peers += other != replica && _replicas[other].LastPublished > since ? 1 : 0;
        }

        return peers;
    }

    public void Subscribe(int replica, Action<BackendStateKey, BackendBudgetObservation> onObservation) => _replicas[replica].Subscriber = onObservation;

    public void Publish(int replica, BackendStateKey key, BackendBudgetObservation observation, DateTimeOffset now)
    {
        var from = _replicas[replica];
        from.Pending[key] = observation;
        from.LastPublished = now;
        if (now >= from.NextFlush)
        {
            Flush(replica, now);
        }
    }

    private void Tick()
    {
        var now = _time.GetUtcNow();
        for (var replica = 0; replica < _replicas.Count; replica++)
        {
            if (_replicas[replica].Pending.Count > 0 && now >= _replicas[replica].NextFlush)
            {
                Flush(replica, now);
            }
        }

        while (_inFlight.TryPeek(out var message, out var due) && due.Due <= now)
        {
            _inFlight.Dequeue();
            for (var to = 0; to < _replicas.Count; to++)
            {
                if (to != message.From)
                {
                    _replicas[to].Subscriber?.Invoke(message.Key, message.Observation);
                }
            }
        }
    }

    private void Flush(int replica, DateTimeOffset now)
    {
        var from = _replicas[replica];
        foreach (var (key, observation) in from.Pending)
        {
            _inFlight.Enqueue((replica, key, observation), (now + _delay, _sequence++));
            Published++;
        }

        from.Pending.Clear();
        from.NextFlush = now + _interval;
    }

    private sealed class Replica
    {
        public Dictionary<BackendStateKey, BackendBudgetObservation> Pending { get; } = [];

        public DateTimeOffset NextFlush { get; set; }

        public DateTimeOffset LastPublished { get; set; } = DateTimeOffset.MinValue;

        public Action<BackendStateKey, BackendBudgetObservation>? Subscriber { get; set; }
    }
}
