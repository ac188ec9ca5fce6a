using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;

namespace Polly.PriorityRouting;

/// <summary>
/// The backends of each handler's live pipeline, by options name, and whether the latest reload of its options was
/// rejected: what snapshots and the health check read, so that they see what routing sees and never rebuild it.
/// </summary>
/// <remarks>
/// A strategy attaches its <see cref="BackendPool"/> when Polly builds it and detaches it when Polly disposes it; a
/// reload builds the new pipeline before it disposes the old one, so the newest always wins. An invalid reload never
/// reaches Polly (the options monitor rejects it), so the live pipeline keeps the last good options: this registry
/// watches the same change tokens, validates each change itself and records (and logs) a rejection.
/// </remarks>
internal sealed partial class LivePipelines : IDisposable
{
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly IOptionsFactory<PriorityRoutingHandlerOptions> _factory;
    private readonly ILogger _logger;
    private readonly List<IDisposable> _watches = [];

    public LivePipelines(
        IOptionsFactory<PriorityRoutingHandlerOptions> factory,
        IEnumerable<IOptionsChangeTokenSource<PriorityRoutingHandlerOptions>> changeSources,
        ILoggerFactory? loggerFactory = null)
    {
        _factory = factory;
        _logger = loggerFactory?.CreateLogger(PriorityRoutingMetrics.MeterName) ?? NullLogger.Instance;
        foreach (var source in changeSources)
        {
            var name = source.Name ?? Options.DefaultName;
            _watches.Add(ChangeToken.OnChange(source.GetChangeToken, () => Revalidate(name)));
        }
    }

    /// <summary>Records a pipeline's backends as the live ones of its options; disposing the result detaches them.</summary>
    public IDisposable Attach(string optionsName, BackendPool pool)
    {
        EntryOf(optionsName).Live = pool;
        return new Attachment(this, optionsName, pool);
    }

    /// <summary>
    /// Returns the live backends of <paramref name="optionsName"/>, or — before any pipeline was built — backends built
    /// once per options instance by <paramref name="build"/>; and the failures of the latest reload when it was rejected.
    /// </summary>
    public (BackendPool? Pool, IReadOnlyList<string>? RejectedReload) Read(
        string optionsName,
        IOptionsMonitor<PriorityRoutingHandlerOptions> monitor,
        Func<PriorityRoutingHandlerOptions, BackendPool> build)
    {
        var entry = EntryOf(optionsName);
        if (entry.Live is { } live)
        {
            return (live, entry.RejectedReload);
        }

        try
        {
            var options = monitor.Get(optionsName);
            if (entry.Configured is not { } configured || !ReferenceEquals(configured.Options, options))
            {
                configured = new ConfiguredPool(options, build(options));
                entry.Configured = configured;
            }

            return (configured.Pool, entry.RejectedReload);
        }
        catch (Exception e)
        {
            // The current configuration is invalid (or a configure action throws): the last good one stands, if any.
            entry.RejectedReload ??= FailuresOf(e);
            return (entry.Configured?.Pool, entry.RejectedReload);
        }
    }

    public void Dispose()
    {
        foreach (var watch in _watches)
        {
            watch.Dispose();
        }
    }

    private Entry EntryOf(string optionsName) => _entries.GetOrAdd(optionsName, static _ => new Entry());

    private static string[] FailuresOf(Exception e) => e is OptionsValidationException invalid ? [.. invalid.Failures] : [e.Message];

    private void Revalidate(string optionsName)
    {
        var entry = EntryOf(optionsName);
        try
        {
            _ = _factory.Create(optionsName);
            entry.RejectedReload = null;
        }
        catch (Exception e)
        {
            // Invalid options, or a configure action that throws: the monitor rejects the change too, and the last good
            // options stand.
            entry.RejectedReload = FailuresOf(e);
            Log.ReloadRejected(_logger, PriorityRoutingHandlerNames.DescribeClient(optionsName), string.Join(" ", entry.RejectedReload));
        }
    }

    /// <summary>Backends built from options before any pipeline was: once per options instance the monitor hands out.</summary>
    private sealed record ConfiguredPool(PriorityRoutingHandlerOptions Options, BackendPool Pool);

    private sealed class Entry
    {
        private volatile BackendPool? _live;
        private volatile ConfiguredPool? _configured;
        private volatile IReadOnlyList<string>? _rejectedReload;

        public BackendPool? Live
        {
            get => _live;
            set => _live = value;
        }

        public ConfiguredPool? Configured
        {
            get => _configured;
            set => _configured = value;
        }

        public IReadOnlyList<string>? RejectedReload
        {
            get => _rejectedReload;
            set => _rejectedReload = value;
        }

        public void Detach(BackendPool pool) => Interlocked.CompareExchange(ref _live, null, pool);
    }

    private sealed class Attachment(LivePipelines owner, string optionsName, BackendPool pool) : IDisposable
    {
        public void Dispose() => owner.EntryOf(optionsName).Detach(pool);
    }

    private static partial class Log
    {
        [LoggerMessage(30, LogLevel.Warning,
            "A configuration reload of the priority routing handler of {Client} was rejected; routing keeps the last good configuration. {Errors}")]
        public static partial void ReloadRejected(ILogger logger, string client, string errors);
    }
}
