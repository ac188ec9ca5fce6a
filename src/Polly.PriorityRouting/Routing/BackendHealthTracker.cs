using System.Collections.Concurrent;

namespace Polly.PriorityRouting;

/// <summary>
/// Outlier ejection: counts failures in a row per backend, ejects a backend for a growing (and decaying) time, and lets
/// exactly one probe through when an ejection ends. One tracker per store (see <see cref="SharedBackendState"/>), keyed
/// by backend identity, so that every pipeline sharing a store (other clients, rebuilt pipelines) shares what it counts.
/// </summary>
/// <remarks>
/// The ejection deadline itself is written to the store by <see cref="BackendPool"/>, like any other unavailability:
/// this class keeps only what is per process — counts, episodes and the probe slot.
/// </remarks>
internal sealed class BackendHealthTracker
{
    // Only backends that ever failed are tracked; identities come from configuration, so this stays small.
    private readonly ConcurrentDictionary<string, BackendHealth> _states = new(StringComparer.Ordinal);

    // ConcurrentDictionary.IsEmpty takes every lock when the dictionary is empty: the hot path reads this instead.
    private int _trackedCount;
    private long _lastProbeToken;
    private long _ejections;

    /// <summary>
    /// Gets the count of ejections so far, of every backend: taken before a selection reads which backends are in
    /// rotation, it lets the admission tell a backend ejected since (see <see cref="TryAdmit"/>).
    /// </summary>
    public long EjectionMark => Volatile.Read(ref _ejections);

    /// <summary>Returns whether another request is probing the backend right now. Lock-free, allocation-free.</summary>
    public bool IsProbeInFlight(RoutedBackend backend)
        => Volatile.Read(ref _trackedCount) != 0 && _states.TryGetValue(backend.StateKey.Backend, out var health) && health.IsProbeInFlight;

    /// <summary>
    /// Admits an attempt: always, unless the backend was ejected after the selection read it in rotation, or its
    /// ejection has ended and another request holds the probe.
    /// </summary>
    /// <param name="backend">The backend the selection chose.</param>
    /// <param name="now">The current time.</param>
    /// <param name="readAtMark">The <see cref="EjectionMark"/> taken before the selection read the backend in rotation.</param>
    /// <param name="lease">The attempt's admission.</param>
    public bool TryAdmit(RoutedBackend backend, DateTimeOffset now, long readAtMark, out BackendLease lease)
    {
        if (Volatile.Read(ref _trackedCount) == 0 || !_states.TryGetValue(backend.StateKey.Backend, out var health))
        {
            lease = new BackendLease(backend, null, 0, 0);
            return true;
        }

        lock (health)
        {
            if (health.EjectedAtMark > readAtMark && now < health.EjectedUntil)
            {
                // Another request's failure ejected it between the selection's read and now: skipped like a backend out
                // of rotation. Sent, its attempt would belong to the new episode, and its failure eject it again.
                lease = default;
                return false;
            }

            if (!health.ProbePending || now < health.EjectedUntil)
            {
                lease = new BackendLease(backend, health, 0, health.Episode);
                return true;
            }

            if (health.IsProbeInFlight)
            {
                lease = default;
                return false;
            }

            var token = Interlocked.Increment(ref _lastProbeToken);
            health.ProbeHolder = token;
            lease = new BackendLease(backend, health, token, health.Episode);
            return true;
        }
    }

    /// <summary>The backend answered (anything but a server error, a transport error or a timeout).</summary>
    public void RecordHealthy(in BackendLease lease)
    {
        var health = lease.Health ?? Find(lease.Backend);
        if (health is null)
        {
            return;
        }

        lock (health)
        {
            if (lease.Episode != health.Episode)
            {
                // Admitted before the current ejection: its answer predates what ejected the backend.
                return;
            }

            health.ConsecutiveFailures = 0;
            health.ProbePending = false;
            health.ProbeHolder = 0;
        }
    }

    /// <summary>
    /// Records a server error, transport error or timeout.
    /// </summary>
    /// <returns>The ejection when this failure ejects the backend; otherwise <see langword="null"/>.</returns>
    public (TimeSpan Duration, int Ejections)? RecordFailure(in BackendLease lease, DateTimeOffset now, OutlierEjectionOptions options)
    {
        var health = lease.Health ?? GetOrAdd(lease.Backend);
        lock (health)
        {
            if (lease.Episode != health.Episode)
            {
                // One episode, one ejection: requests already in flight when the backend was ejected fail too, and
                // must not eject it again.
                return null;
            }

            health.ConsecutiveFailures++;
            var probeFailed = health.ProbePending && now >= health.EjectedUntil;
            if (!probeFailed && health.ConsecutiveFailures < options.ConsecutiveFailures)
            {
                return null;
            }

            // Each base ejection time spent healthy since the last ejection ended forgives one ejection.
            var forgiven = health.EjectedUntil == default || probeFailed
                ? 0
                : (int)Math.Min(int.MaxValue, Math.Max(0, (now - health.EjectedUntil).Ticks / options.BaseEjectionTime.Ticks));
            health.Ejections = Math.Max(0, health.Ejections - forgiven) + 1;

            var ticks = Math.Min(options.MaxEjectionTime.Ticks, (double)options.BaseEjectionTime.Ticks * health.Ejections);
            var duration = TimeSpan.FromTicks((long)ticks);
            health.EjectedUntil = now + duration;
            health.ConsecutiveFailures = 0;
            health.ProbePending = true;
            health.ProbeHolder = 0;
            health.Episode++;
            health.EjectedAtMark = Interlocked.Increment(ref _ejections);
            return (duration, health.Ejections);
        }
    }

    private BackendHealth? Find(RoutedBackend backend)
        => Volatile.Read(ref _trackedCount) != 0 && _states.TryGetValue(backend.StateKey.Backend, out var health) ? health : null;

    private BackendHealth GetOrAdd(RoutedBackend backend)
    {
        if (_states.TryGetValue(backend.StateKey.Backend, out var health))
        {
            return health;
        }

        var created = new BackendHealth();
        health = _states.GetOrAdd(backend.StateKey.Backend, created);
        if (ReferenceEquals(health, created))
        {
            Interlocked.Increment(ref _trackedCount);
        }

        return health;
    }
}
