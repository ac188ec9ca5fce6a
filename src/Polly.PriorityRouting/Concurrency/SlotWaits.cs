namespace Polly.PriorityRouting;

/// <summary>
/// A pool's waits for a concurrency slot (<see cref="PriorityRoutingStrategyOptions.MaxQueueWait"/> with
/// <see cref="PriorityBackend.MaxConcurrentRequests"/>): a request whose backends in rotation are all at their cap waits
/// for the next slot one of them gives back. Foreground first: a background request is woken only while no foreground
/// request has its turn at the backend (<see cref="SlotTurn"/>), as a refill's room goes to foreground requests first.
/// </summary>
internal sealed class SlotWaits
{
    private readonly IReadOnlyList<RoutedBackend> _backends;
    private readonly BackendAvailability _availability;
    private readonly bool _hasConcurrencyCaps;
    private readonly TimeProvider _timeProvider;
    private int _waiters;

    /// <param name="backends">The pool's backends.</param>
    /// <param name="availability">The pool's reads of the backends' rotation.</param>
    /// <param name="hasConcurrencyCaps">Whether some backend caps its requests in flight.</param>
    /// <param name="timeProvider">The pipeline's clock.</param>
    public SlotWaits(IReadOnlyList<RoutedBackend> backends, BackendAvailability availability, bool hasConcurrencyCaps, TimeProvider timeProvider)
    {
        _backends = backends;
        _availability = availability;
        _hasConcurrencyCaps = hasConcurrencyCaps;
        _timeProvider = timeProvider;
    }

    /// <summary>
    /// Waits, within <paramref name="bound"/>, until a slot frees on a backend the request may use that is in rotation
    /// and at its cap (<see cref="PriorityRoutingStrategyOptions.MaxQueueWait"/>); at most
    /// <see cref="WaitQueue.MaxWaiters"/> requests of the pipeline wait so at once.
    /// </summary>
    /// <param name="route">The request's route: the backends whose slots it may wait for, and its class.</param>
    /// <param name="bound">What is left of the request's bound on waiting.</param>
    /// <param name="synchronous">Whether the caller is synchronous (<c>HttpClient.Send</c>): it then waits on its own thread.</param>
    /// <param name="continueOnCapturedContext">Whether to continue on the caller's context.</param>
    /// <param name="cancellationToken">The caller's cancellation.</param>
    /// <returns>
    /// Whether a slot was given back in time (the request starts a new round); <see langword="false"/> at once when no
    /// such backend is at its cap, too many wait, or the bound is spent; also when the caller cancels. When a slot was
    /// given back to a foreground request, its turn, which the caller ends once its next admission is decided.
    /// </returns>
    public async ValueTask<(bool Freed, SlotTurn? Turn)> WaitAsync(RequestRoute route, TimeSpan bound, bool synchronous, bool continueOnCapturedContext, CancellationToken cancellationToken)
    {
        if (bound <= TimeSpan.Zero || SlotReleases(route) is not { } releases)
        {
            return (false, null);
        }

        if (Interlocked.Increment(ref _waiters) > WaitQueue.MaxWaiters)
        {
            Interlocked.Decrement(ref _waiters);
            return (false, null);
        }

        var turn = route.IsBackground ? null : BeginTurn(releases.Limits);
        var freed = false;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        try
        {
            var bounded = Task.Delay(bound, _timeProvider, timeout.Token);
            releases.Tasks.Add(bounded);
            // A synchronous caller (sync-over-async in HttpClient.Send) is blocked anyway: it waits on its own thread rather
            // than taking a thread-pool thread for a continuation that would block again in its synchronous send.
            var released = Task.WhenAny(releases.Tasks);
            var first = synchronous ? released.GetAwaiter().GetResult() : await released.ConfigureAwait(continueOnCapturedContext);
            freed = first != bounded && !cancellationToken.IsCancellationRequested;
            return (freed, freed ? turn : null);
        }
        finally
        {
            if (!freed)
            {
                turn?.Dispose();
            }

            // The delay's timer goes with the wait (on a synchronous caller's own thread, too).
            if (synchronous)
            {
                timeout.Cancel();
            }
            else
            {
                await timeout.CancelAsync().ConfigureAwait(continueOnCapturedContext);
            }
            Interlocked.Decrement(ref _waiters);
        }
    }

    private static SlotTurn BeginTurn(List<InFlightLimit> limits)
    {
        foreach (var limit in limits)
        {
            limit.BeginForegroundTurn();
        }

        return new SlotTurn(limits);
    }

    /// <summary>The request's backends at their cap and in rotation, and their release tasks for its class; <see langword="null"/> when none.</summary>
    private (List<Task> Tasks, List<InFlightLimit> Limits)? SlotReleases(RequestRoute route)
    {
        if (!_hasConcurrencyCaps)
        {
            return null;
        }

        var now = _timeProvider.GetUtcNow();
        (List<Task> Tasks, List<InFlightLimit> Limits)? releases = null;
        foreach (var backend in route.BackendsOf(_backends))
        {
            if (backend.InFlight is not { } limit)
            {
                continue;
            }

            // The task first, then the count: a slot given back in between is not missed.
            var released = limit.WhenReleased(route.IsBackground);
            if (limit.IsFull && _availability.GetTimeUntilAvailable(backend, now, route.PartitionOn(backend), out _) == TimeSpan.Zero)
            {
                releases ??= ([], []);
                releases.Value.Tasks.Add(released);
                releases.Value.Limits.Add(limit);
            }
        }

        return releases;
    }
}
