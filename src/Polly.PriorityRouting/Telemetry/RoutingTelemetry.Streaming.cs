using Microsoft.Extensions.Logging;

namespace Polly.PriorityRouting;

/// <summary>What the strategy reports about response bodies: time to first byte, first-byte timeouts, broken streams.</summary>
internal sealed partial class RoutingTelemetry
{
    public void FirstByte(RoutedBackend backend, TimeSpan timeToFirstByte)
    {
        if (_metrics.TimeToFirstByte.Enabled)
        {
            _metrics.TimeToFirstByte.Record(timeToFirstByte.TotalSeconds, WithBackend(backend));
        }
    }

    public void FirstByteTimedOut(RoutedBackend backend, TimeSpan timeout)
        => Log.FirstByteTimedOut(_logger, backend.Name, backend.Priority, (long)timeout.TotalMilliseconds);

    /// <summary>
    /// A body that was already the caller's broke: counted and logged (Warning), never thrown. The transport's
    /// exception is named by type only: its message may carry an address.
    /// </summary>
    public void StreamBroken(RoutedBackend backend, BodyEnd end, Exception? exception, TimeSpan? stallTimeout)
    {
        var stalled = end == BodyEnd.Stalled;
        if (_metrics.BrokenStreams.Enabled)
        {
            var tags = WithBackend(backend);
            tags.Add(PriorityRoutingTags.Reason, stalled ? PriorityRoutingTags.StalledStream : PriorityRoutingTags.AbortedStream);
            _metrics.BrokenStreams.Add(1, tags);
        }

        if (stalled)
        {
            Log.StreamStalled(_logger, backend.Name, backend.Priority, (long)(stallTimeout ?? TimeSpan.Zero).TotalMilliseconds);
        }
        else
        {
            Log.StreamAborted(_logger, backend.Name, backend.Priority, exception?.GetType().Name ?? "unknown");
        }
    }

    /// <summary>Broken streams ejected a backend: the mark is counted and logged like any ejection.</summary>
    public void StreamEjected(RoutedBackend backend, BackendVerdict verdict)
    {
        var tags = WithBackend(backend);
        tags.Add(PriorityRoutingTags.Reason, PriorityRoutingTags.ToTagValue(verdict.Reason));
        _metrics.MarkedUnavailable.Add(1, tags);
        if (verdict.StoreError is { } storeError)
        {
            Log.StoreWriteFailed(_logger, backend.Name, storeError);
        }

        Log.BackendEjected(_logger, backend.Name, backend.Priority, (long)verdict.Cooldown.TotalMilliseconds, verdict.Ejections, verdict.Cause);
    }

    private static partial class Log
    {
        [LoggerMessage(9, LogLevel.Information,
            "Backend '{BackendName}' (priority {Priority}) sent response headers but no body byte within {FirstByteTimeoutMs} ms; failing over.")]
        public static partial void FirstByteTimedOut(ILogger logger, string backendName, int priority, long firstByteTimeoutMs);

        [LoggerMessage(10, LogLevel.Warning,
            "The response body from backend '{BackendName}' (priority {Priority}) broke after reaching the caller ({ExceptionType}); counted against its health.")]
        public static partial void StreamAborted(ILogger logger, string backendName, int priority, string exceptionType);

        [LoggerMessage(11, LogLevel.Warning,
            "The response body from backend '{BackendName}' (priority {Priority}) stalled: a read waited more than {StallTimeoutMs} ms; counted against its health.")]
        public static partial void StreamStalled(ILogger logger, string backendName, int priority, long stallTimeoutMs);
    }
}
