using System.Collections.Concurrent;
using System.Runtime.CompilerServices;

namespace Polly.PriorityRouting;

/// <summary>
/// Counts failures in a row per backend, ejects outliers for a growing time, and lets exactly one probe request through
/// when an ejection ends. One detector per store, so that every pipeline sharing a store (other clients, rebuilt
/// pipelines) shares what it counts.
/// </summary>
/// <remarks>
/// The ejection deadline is written to the store like any other unavailability; this class only keeps the counts and
/// the probe gate, which are per process.
/// </remarks>
internal sealed class OutlierDetector
{
    private static readonly ConditionalWeakTable<IBackendStateStore, OutlierDetector> ByStore = new();

    private readonly ConcurrentDictionary<string, BackendOutlierState> _states = new(StringComparer.Ordinal);

    // ConcurrentDictionary.IsEmpty takes every lock when the dictionary is empty: the hot path reads this instead.
    private int _trackedCount;

    public static OutlierDetector For(IBackendStateStore store) => ByStore.GetValue(store, _ => new OutlierDetector());

    /// <summary>
    /// Returns whether another request is probing the backend right now, in which case this one must not use it.
    /// Lock-free and allocation-free; free when the backend never failed.
    /// </summary>
    public bool IsProbeInFlight(string backendName)
        => Volatile.Read(ref _trackedCount) != 0 && _states.TryGetValue(backendName, out var state) && Volatile.Read(ref state.ProbeInFlight) == 1;

    /// <summary>
    /// Admits an attempt on a backend: always, unless its ejection has ended and the probe slot is taken.
    /// </summary>
    /// <returns><see langword="false"/> when another request holds the probe.</returns>
    public bool TryAdmit(string backendName, DateTimeOffset now, out bool isProbe)
    {
        isProbe = false;
        if (Volatile.Read(ref _trackedCount) == 0 || !_states.TryGetValue(backendName, out var state))
        {
            return true;
        }

        lock (state)
        {
            if (!state.ProbePending || now < state.EjectedUntil)
            {
                return true;
            }

            if (state.ProbeInFlight == 1)
            {
                return false;
            }

            Volatile.Write(ref state.ProbeInFlight, 1);
            isProbe = true;
            return true;
        }
    }

    /// <summary>The backend answered (any answer that is not a server error, a transport error or a timeout).</summary>
    public void RecordHealthy(string backendName)
    {
        if (Volatile.Read(ref _trackedCount) == 0 || !_states.TryGetValue(backendName, out var state))
        {
            return;
        }

        lock (state)
        {
            state.ConsecutiveFailures = 0;
            state.ProbePending = false;
            Volatile.Write(ref state.ProbeInFlight, 0);
        }
    }

    /// <summary>The attempt ended without telling anything about the backend (e.g. the caller cancelled).</summary>
    public void ReleaseProbe(string backendName)
    {
        if (Volatile.Read(ref _trackedCount) != 0 && _states.TryGetValue(backendName, out var state))
        {
            Volatile.Write(ref state.ProbeInFlight, 0);
        }
    }

    /// <summary>
    /// Records a server error, transport error or timeout.
    /// </summary>
    /// <returns>The ejection time when this failure ejects the backend; otherwise <see langword="null"/>.</returns>
    public (TimeSpan Duration, int Ejections)? RecordFailure(string backendName, DateTimeOffset now, OutlierEjectionOptions options)
    {
        if (!_states.TryGetValue(backendName, out var state))
        {
            state = new BackendOutlierState();
            if (_states.TryAdd(backendName, state))
            {
                Interlocked.Increment(ref _trackedCount);
            }
            else
            {
                state = _states[backendName];
            }
        }

        lock (state)
        {
            state.ConsecutiveFailures++;
            var probeFailed = state.ProbePending && now >= state.EjectedUntil;
            if (!probeFailed && state.ConsecutiveFailures < options.ConsecutiveFailures)
            {
                return null;
            }

            // Each base ejection time spent healthy since the last ejection ended forgives one ejection.
            var forgiven = state.EjectedUntil == default || probeFailed
                ? 0
                : (int)Math.Min(int.MaxValue, Math.Max(0, (now - state.EjectedUntil).Ticks / options.BaseEjectionTime.Ticks));
            state.Ejections = Math.Max(0, state.Ejections - forgiven) + 1;

            var ticks = Math.Min(options.MaxEjectionTime.Ticks, (double)options.BaseEjectionTime.Ticks * state.Ejections);
            var duration = TimeSpan.FromTicks((long)ticks);
            state.EjectedUntil = now + duration;
            state.ConsecutiveFailures = 0;
            state.ProbePending = true;
            Volatile.Write(ref state.ProbeInFlight, 0);
            return (duration, state.Ejections);
        }
    }

    private sealed class BackendOutlierState
    {
        public int ProbeInFlight;
        public int ConsecutiveFailures;
        public int Ejections;
        public DateTimeOffset EjectedUntil;
        public bool ProbePending;
    }
}
