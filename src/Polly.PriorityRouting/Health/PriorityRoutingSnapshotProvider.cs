using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Polly.PriorityRouting;

/// <summary>
/// Takes snapshots of the backends of clients registered with <c>AddPriorityRoutingHandler</c>, from the same options
/// and store their pipelines use. Registered in DI by <c>AddPriorityRoutingHandler</c>.
/// </summary>
public sealed class PriorityRoutingSnapshotProvider
{
    private readonly IOptionsMonitor<PriorityRoutingHandlerOptions> _options;
    private readonly IServiceProvider _services;
    private readonly TimeProvider _timeProvider;
    private readonly LivePipelines _live;

    /// <summary>
    /// Initializes a new instance of the <see cref="PriorityRoutingSnapshotProvider"/> class.
    /// </summary>
    /// <param name="options">The handler options, named per client.</param>
    /// <param name="services">The services, to find the registered <see cref="IBackendStateStore"/> and time provider.</param>
    public PriorityRoutingSnapshotProvider(IOptionsMonitor<PriorityRoutingHandlerOptions> options, IServiceProvider services)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(services);
        _options = options;
        _services = services;
        _timeProvider = services.GetService<TimeProvider>() ?? TimeProvider.System;
        _live = services.GetService<LivePipelines>() ?? ActivatorUtilities.CreateInstance<LivePipelines>(services);
    }

    /// <summary>
    /// Takes a snapshot of one client's backends as its live pipeline sees them. It never throws for a configuration:
    /// after a rejected reload it shows the last good one, with <see cref="PriorityRoutingSnapshot.RejectedReload"/>.
    /// </summary>
    /// <param name="clientName">The name of the <see cref="HttpClient"/> registered with <c>AddPriorityRoutingHandler</c>.</param>
    /// <returns>The snapshot.</returns>
    /// <exception cref="ArgumentException">No client of that name has a priority routing handler.</exception>
    public PriorityRoutingSnapshot GetSnapshot(string clientName)
    {
        ArgumentException.ThrowIfNullOrEmpty(clientName);
        // A handler registered for every client (ConfigureHttpClientDefaults) keeps its options under no client name.
        var registered = _services.GetServices<PriorityRoutingRegistration>().ToArray();
        var ownHandler = registered.Any(r => r.ClientName == clientName);
        if (!ownHandler && !registered.Any(r => r.ClientName is null))
        {
            // Otherwise the options of that name are the defaults, and their validation would blame an empty backend list.
            throw new ArgumentException(
                $"No HttpClient named '{clientName}' has a priority routing handler (AddPriorityRoutingHandler).", nameof(clientName));
        }

        var optionsName = PriorityRoutingHandlerNames.OptionsName(ownHandler ? clientName : null);

        // Before the client's first pipeline is built, backends built once from its options show what it will route over.
        var (pool, rejectedReload) = _live.Read(optionsName, _options, options => new BackendPool(
            options.Routing,
            PriorityRoutingHandlerPipeline.ResolveSharedState(options.Routing, _services),
            _timeProvider));
        var now = _timeProvider.GetUtcNow();
        return pool is null ? PriorityRoutingSnapshot.Empty(now, rejectedReload) : PriorityRoutingSnapshot.From(pool, now, rejectedReload);
    }
}
