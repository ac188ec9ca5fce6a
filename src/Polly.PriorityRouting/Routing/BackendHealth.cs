namespace Polly.PriorityRouting;

/// <summary>
/// The outlier state of one backend: failures in a row, ejections in a row, the current ejection, and the probe slot.
/// Changed only under its own lock, by <see cref="BackendHealthTracker"/>.
/// </summary>
internal sealed class BackendHealth
{
    private long _probeHolder;

    public int ConsecutiveFailures { get; set; }

    public int Ejections { get; set; }

    public DateTimeOffset EjectedUntil { get; set; }

    /// <summary>Gets or sets a value indicating whether the next attempt after the ejection must be a lone probe.</summary>
    public bool ProbePending { get; set; }

    /// <summary>Gets or sets the ejection episode: incremented by each ejection.</summary>
    public long Episode { get; set; }

    /// <summary>Gets or sets the tracker's count of ejections when this backend was last ejected (see <see cref="BackendHealthTracker.EjectionMark"/>).</summary>
    public long EjectedAtMark { get; set; }

    public bool IsProbeInFlight => Volatile.Read(ref _probeHolder) != 0;

    public long ProbeHolder
    {
        get => Volatile.Read(ref _probeHolder);
        set => Volatile.Write(ref _probeHolder, value);
    }

    /// <summary>Frees the probe slot if <paramref name="token"/> still holds it.</summary>
    public void ReleaseProbe(long token) => Interlocked.CompareExchange(ref _probeHolder, 0, token);
}
