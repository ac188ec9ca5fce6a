namespace Polly.PriorityRouting;

/// <summary>
/// Takes a backend (or a partition of it) out of rotation: writes its mark to the store and gives the attempt's
/// <see cref="BackendVerdict"/>. A failing store never fails a request.
/// </summary>
internal sealed class BackendMarker
{
    private readonly BackendAvailability _availability;
    private readonly TimeProvider _timeProvider;

    /// <param name="availability">The pool's reads of the backends' rotation, and its store.</param>
    /// <param name="timeProvider">The pipeline's clock.</param>
    public BackendMarker(BackendAvailability availability, TimeProvider timeProvider)
    {
        _availability = availability;
        _timeProvider = timeProvider;
    }

    /// <summary>
    /// Marks <paramref name="key"/> out of rotation for <paramref name="cooldown"/>; the verdict says whether it left
    /// rotation just now, and carries the store's failure, if any.
    /// </summary>
    public async ValueTask<BackendVerdict> MarkAsync(
        BackendStateKey key,
        BackendUnavailableReason reason,
        BackendUnavailableReason cause,
        TimeSpan cooldown,
        int ejections,
        DateTimeOffset now,
        CancellationToken cancellationToken)
    {
        var leftRotation = ejections > 0 || !_availability.IsMarked(key, now);
        try
        {
            await _availability.Store.MarkUnavailableAsync(key, new BackendUnavailability(now + cooldown, reason, now), now, cancellationToken)
                .ConfigureAwait(false);
            return new BackendVerdict(reason, cause, cooldown, leftRotation, ejections, null);
        }
        catch (Exception e)
        {
            // A failing store never fails a request: this attempt still fails over, later ones may retry the backend.
            // A store that gave up because the caller cancelled is not failing: the loop returns the cancellation next.
            return new BackendVerdict(reason, cause, cooldown, leftRotation, ejections, cancellationToken.IsCancellationRequested ? null : e);
        }
    }

    /// <summary>An answer said its budget is spent: its key leaves rotation until the reset (a proactive throttle).</summary>
    public async ValueTask<BackendVerdict?> MarkSpentAsync(BackendStateKey key, TimeSpan cooldown, CancellationToken cancellationToken)
        => await MarkAsync(key, BackendUnavailableReason.Throttled, BackendUnavailableReason.Throttled, cooldown, 0, _timeProvider.GetUtcNow(), cancellationToken)
            .ConfigureAwait(false);

    /// <summary>A failure after the answer ejected the backend: all of it leaves rotation for the ejection.</summary>
    public async ValueTask<BackendVerdict?> MarkEjectedAsync(RoutedBackend backend, BackendUnavailableReason cause, TimeSpan duration, int ejections, DateTimeOffset now)
        => await MarkAsync(backend.StateKey, BackendUnavailableReason.Ejected, cause, duration, ejections, now, CancellationToken.None).ConfigureAwait(false);
}
