using System.Buffers;
using System.Net;
using Polly.Timeout;

namespace Polly.PriorityRouting;

/// <summary>
/// Streaming awareness of one strategy: waits, inside the attempt, for the first byte of a returned response's body
/// (<see cref="PriorityRoutingStrategyOptions.FirstByteTimeout"/>), hands the caller the body intact through a
/// <see cref="WatchedStream"/>, and turns how the body ends into its backend's health, time-to-first-byte samples and
/// broken-stream metrics.
/// </summary>
/// <remarks>
/// Always on: a body that breaks after reaching the caller counts against its backend's health whatever the options
/// (five aborted streams in a row eject a backend with the defaults too). Without a first-byte timeout or latency-aware
/// selection nothing is read ahead; the body is only wrapped, at the price of two small objects and a copy of the
/// content headers' references.
/// </remarks>
internal sealed class ResponseBodyWatcher
{
    // Enough to hold what one read of a chunk's start returns; the buffer is pooled and given back at the first read.
    private const int PrefetchSize = 16;

    private static readonly Action<object?> CancelSource = static source => ((CancellationTokenSource)source!).Cancel();

    private readonly BackendPool _pool;
    private readonly RoutingTelemetry _telemetry;
    private readonly TimeSpan? _firstByteTimeout;

    private ResponseBodyWatcher(BackendPool pool, RoutingTelemetry telemetry, TimeProvider timeProvider, TimeSpan? firstByteTimeout, TimeSpan? stallTimeout)
    {
        _pool = pool;
        _telemetry = telemetry;
        TimeProvider = timeProvider;
        _firstByteTimeout = firstByteTimeout;
        StallTimeout = stallTimeout;
    }

    public TimeProvider TimeProvider { get; }

    public TimeSpan? StallTimeout { get; }

    public static ResponseBodyWatcher Create(PriorityRoutingStrategyOptions options, BackendPool pool, RoutingTelemetry telemetry, TimeProvider timeProvider)
        => new(pool, telemetry, timeProvider, options.FirstByteTimeout, options.StreamStallTimeout);

    /// <summary>Returns whether a response's body is known to be empty without reading it.</summary>
    public static bool IsKnownEmpty(HttpResponseMessage response, HttpMethod method)
        => method == HttpMethod.Head ||
           response.StatusCode is HttpStatusCode.NoContent or HttpStatusCode.NotModified ||
           response.Content.Headers.ContentLength == 0;

    /// <summary>
    /// Prepares a response that goes back to the caller: with a first-byte timeout or latency-aware selection, reads
    /// ahead until the first byte is available (or the body is known empty); then wraps the body so that its end is
    /// reported.
    /// </summary>
    /// <returns>
    /// Ready (the response's content may have been replaced), or a failure to fail over with, or the caller's
    /// cancellation. On failure and cancellation the response is already disposed.
    /// </returns>
    /// <remarks>Synchronous, with no state machine, unless it reads ahead.</remarks>
    public ValueTask<BodyPreparation> PrepareAsync(
        HttpResponseMessage response,
        HttpMethod method,
        BackendLease lease,
        long attemptStarted,
        bool continueOnCapturedContext,
        CancellationToken cancellationToken)
    {
        if (WatchedContent.IsWatched(response.Content))
        {
            // The same response object came back again (a transport that caches its answers): it is watched already,
            // and wrapping it once more per request would nest wrappers without bound.
            return new(BodyPreparation.Ready(deferHealth: false));
        }

        if (IsKnownEmpty(response, method))
        {
            FirstByte(lease.Backend, attemptStarted);
            return new(BodyPreparation.Ready(deferHealth: false));
        }

        if (_firstByteTimeout is null && _pool.Latency is null)
        {
            // Only stalls are watched: no wait, and the caller's first read stands for the time to first byte.
            response.Content = new WatchedContent(response.Content, new WatchedStream(this, lease, attemptStarted));
            return new(BodyPreparation.Ready(deferHealth: true));
        }

        return ReadAheadAsync(response, lease, attemptStarted, continueOnCapturedContext, cancellationToken);
    }

    /// <summary>Waits for the first body byte, up to the first-byte timeout; then wraps the body.</summary>
    private async ValueTask<BodyPreparation> ReadAheadAsync(
        HttpResponseMessage response,
        BackendLease lease,
        long attemptStarted,
        bool continueOnCapturedContext,
        CancellationToken cancellationToken)
    {
        // Latency-aware selection reads ahead too (with no deadline of its own): a sample taken at the caller's first
        // read would charge the caller's own delay to the backend and move traffic away from a fast one.
        var timeout = _firstByteTimeout ?? System.Threading.Timeout.InfiniteTimeSpan;

        var buffer = ArrayPool<byte>.Shared.Rent(PrefetchSize);
        var timeoutSource = PooledTimeoutSources.Rent(TimeProvider, timeout);
        var registration = cancellationToken.CanBeCanceled ? cancellationToken.UnsafeRegister(CancelSource, timeoutSource) : default;
        Stream? body = null;
        var read = 0;
        Exception? failure = null;
        try
        {
            body = await response.Content.ReadAsStreamAsync(timeoutSource.Token).ConfigureAwait(continueOnCapturedContext);
            read = await body.ReadAsync(buffer.AsMemory(0, PrefetchSize), timeoutSource.Token).ConfigureAwait(continueOnCapturedContext);
        }
#pragma warning disable CA1031 // Whatever the read throws, the caller has seen nothing yet: it decides the attempt.
        catch (Exception e)
#pragma warning restore CA1031
        {
            failure = e;
        }
        finally
        {
            await registration.DisposeAsync().ConfigureAwait(continueOnCapturedContext);
        }

        var timedOut = timeoutSource.IsCancellationRequested && !cancellationToken.IsCancellationRequested;
        PooledTimeoutSources.Return(TimeProvider, timeoutSource);

        if (failure is not null)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            response.Dispose();
            if (cancellationToken.IsCancellationRequested)
            {
                return BodyPreparation.Canceled();
            }

            if (timedOut)
            {
                _telemetry.FirstByteTimedOut(lease.Backend, timeout);
                return BodyPreparation.Failed(new TimeoutRejectedException(
                    $"The backend sent response headers but no body byte within the first-byte timeout of {timeout.TotalMilliseconds} ms.",
                    timeout,
                    failure));
            }

            return BodyPreparation.Failed(new HttpRequestException(
                HttpRequestError.ResponseEnded, "The backend's response body failed before its first byte.", failure));
        }

        FirstByte(lease.Backend, attemptStarted);
        var stream = new WatchedStream(this, lease, attemptStarted, body, read > 0 ? buffer : null, read);
        if (read == 0)
        {
            // An empty body (chunked, or of unknown length): it is over, and the backend answered.
            ArrayPool<byte>.Shared.Return(buffer);
            stream.MarkEnded();
        }

        response.Content = new WatchedContent(response.Content, stream);
        return BodyPreparation.Ready(deferHealth: read > 0);
    }

    /// <summary>The first byte of a body is available (or the body is known empty): one time-to-first-byte sample.</summary>
    public void FirstByte(RoutedBackend backend, long attemptStarted)
    {
        var elapsed = TimeProvider.GetElapsedTime(attemptStarted);
        _pool.Latency?.Record(backend.Index, elapsed);
        _telemetry.FirstByte(backend, elapsed);
    }

    /// <summary>Turns how a body ended into its backend's health; called once per body.</summary>
    public void BodyEnded(in BackendLease lease, BodyEnd end, Exception? exception)
    {
        switch (end)
        {
            case BodyEnd.Completed or BodyEnd.Released:
                _pool.RecordBodyHealthy(lease);
                break;
            case BodyEnd.Aborted or BodyEnd.Stalled:
                _telemetry.StreamBroken(lease.Backend, end, exception, StallTimeout);
                var marking = _pool.RecordBodyBrokenAsync(
                    lease, end == BodyEnd.Stalled ? BackendUnavailableReason.Timeout : BackendUnavailableReason.TransportError);
                if (!marking.IsCompletedSuccessfully)
                {
                    // A distributed store is writing the ejection: the caller's read does not wait for it.
                    _ = ReportWhenMarkedAsync(marking, lease.Backend);
                }
                else if (marking.Result is { } verdict)
                {
                    _telemetry.StreamEjected(lease.Backend, verdict);
                }

                break;
        }
    }

    private async Task ReportWhenMarkedAsync(ValueTask<BackendVerdict?> marking, RoutedBackend backend)
    {
        try
        {
            if (await marking.ConfigureAwait(false) is { } verdict)
            {
                _telemetry.StreamEjected(backend, verdict);
            }
        }
#pragma warning disable CA1031 // Marking never throws (store failures are in the verdict); a failing logger must not go unobserved.
        catch (Exception)
#pragma warning restore CA1031
        {
        }
    }
}
