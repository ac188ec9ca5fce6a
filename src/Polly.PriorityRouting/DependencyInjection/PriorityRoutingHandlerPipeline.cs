using System.Diagnostics.Metrics;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Logging;
using Polly.Retry;
using Polly.Timeout;

namespace Polly.PriorityRouting;

/// <summary>
/// Composes the handler's pipeline: total timeout → retry → priority routing → attempt timeout, with a retry that
/// never waits past the time the total timeout leaves.
/// </summary>
internal static class PriorityRoutingHandlerPipeline
{
    private static readonly ResiliencePropertyKey<DateTimeOffset> DeadlineKey = new("Polly.PriorityRouting.Deadline");

    public static void Compose(
        ResiliencePipelineBuilder<HttpResponseMessage> pipeline,
        string optionsName,
        PriorityRoutingHandlerOptions options,
        IServiceProvider services)
    {
        var timeProvider = pipeline.TimeProvider ?? TimeProvider.System;
        var routing = WithServices(options.Routing, services, timeProvider);
        if (services.GetService(typeof(LivePipelines)) is LivePipelines live)
        {
            routing.AttachPool = pool => live.Attach(optionsName, pool);
        }

        // New option objects: the monitored instances may serve several pipelines and must not be wrapped twice.
        pipeline
            .ConfigureTelemetry(HandlerTelemetrySeverity.Configure(options, services))
            .AddTimeout(StampDeadline(options.TotalRequestTimeout, timeProvider))
            .AddRetry(CapByDeadline(options.Retry, timeProvider))
            .AddPriorityRouting(routing)
            .AddTimeout(options.AttemptTimeout);
    }

    private static HttpTimeoutStrategyOptions StampDeadline(HttpTimeoutStrategyOptions source, TimeProvider timeProvider)
    {
        var options = OptionsCopy.Shallow(source);
        var sourceGenerator = source.TimeoutGenerator;
        options.TimeoutGenerator = async args =>
        {
            var timeout = sourceGenerator is null
                ? source.Timeout
                : await sourceGenerator(args).ConfigureAwait(args.Context.ContinueOnCapturedContext);
            if (timeout > TimeSpan.Zero)
            {
                // Polly applies no timeout for zero, negative or infinite (-1 ms): then there is no deadline to cap by.
                args.Context.Properties.Set(DeadlineKey, timeProvider.GetUtcNow() + timeout);
            }

            return timeout;
        };
        return options;
    }

    /// <summary>
    /// A copy of the configured retry (every option kept) that reads the exhausted answer's exact delay and never
    /// waits past the total timeout.
    /// </summary>
    internal static HttpRetryStrategyOptions CapByDeadline(HttpRetryStrategyOptions source, TimeProvider timeProvider)
    {
        var useRetryAfter = source.ShouldRetryAfterHeader;
        var sourceDelay = source.DelayGenerator;
        var sourceShouldHandle = source.ShouldHandle;
        var options = OptionsCopy.Shallow(source);

        // Off first: its setter resets DelayGenerator, which is replaced just below.
        options.ShouldRetryAfterHeader = false;
        options.ShouldHandle = async args =>
        {
            HandlerTelemetrySeverity.NoteRetriedOutcome(args.Context, args.Outcome);
            if (!await sourceShouldHandle(args).ConfigureAwait(args.Context.ContinueOnCapturedContext))
            {
                return false;
            }

            // A wait that would end after the total timeout only turns an honest "retry after N" into a timeout.
            return !(useRetryAfter &&
                TryGetRetryAfter(args.Outcome, timeProvider, out var delay) &&
                args.Context.Properties.TryGetValue(DeadlineKey, out var deadline) &&
                timeProvider.GetUtcNow() + delay >= deadline);
        };
        options.DelayGenerator = async args =>
        {
            if (useRetryAfter && TryGetRetryAfter(args.Outcome, timeProvider, out var delay))
            {
                return delay;
            }

            return sourceDelay is null
                ? null
                : await sourceDelay(args).ConfigureAwait(args.Context.ContinueOnCapturedContext);
        };
        return options;
    }

    private static bool TryGetRetryAfter(Outcome<HttpResponseMessage> outcome, TimeProvider timeProvider, out TimeSpan delay)
    {
        // retry-after-ms first: the exhausted answer carries the exact time, Retry-After only whole seconds.
        if (outcome.Result is { } response &&
            ThrottleSignalParser.TryGetRetryAfter(response.Headers, timeProvider.GetUtcNow(), out var seconds))
        {
            delay = seconds <= 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(Math.Min(seconds, TimeSpan.FromDays(1).TotalSeconds));
            return true;
        }

        delay = default;
        return false;
    }

    /// <summary>
    /// The store a client's pipeline uses: its own option, else the one registered in DI, else the shared one.
    /// </summary>
    public static IBackendStateStore ResolveStore(PriorityRoutingStrategyOptions routing, IServiceProvider services)
        => routing.StateStore
           ?? (IBackendStateStore?)services.GetService(typeof(IBackendStateStore))
           ?? InMemoryBackendStateStore.Shared;

    /// <summary>
    /// The DI singleton of what clients on the container's store share: the state of that store instance (the same one a
    /// pipeline composed in code on it uses), or of the process-wide store.
    /// </summary>
    public static SharedBackendState CreateSharedState(IServiceProvider services)
        => SharedBackendState.For((IBackendStateStore?)services.GetService(typeof(IBackendStateStore)) ?? InMemoryBackendStateStore.Shared);

    /// <summary>The shared state of a client's store (see <see cref="SharedBackendState"/>).</summary>
    public static SharedBackendState ResolveSharedState(PriorityRoutingStrategyOptions routing, IServiceProvider services)
        => SharedBackendState.For(ResolveStore(routing, services));

    private static PriorityRoutingStrategyOptions WithServices(PriorityRoutingStrategyOptions source, IServiceProvider services, TimeProvider timeProvider)
    {
        var options = source.Clone();
        options.StateStore = ResolveStore(source, services);
        options.DeferCredentials = true;

        // Without a registered store, the default one of the container's first clock: a transient clock must not start
        // an empty store at every reload.
        options.AffinityStoreFromServices = (IAffinityStore?)services.GetService(typeof(IAffinityStore))
            ?? (services.GetService(typeof(DefaultAffinityClock)) as DefaultAffinityClock)?.StoreFor(timeProvider);
        options.LoggerFactory ??= (ILoggerFactory?)services.GetService(typeof(ILoggerFactory));
        options.MeterFactory ??= (IMeterFactory?)services.GetService(typeof(IMeterFactory));
        return options;
    }
}
