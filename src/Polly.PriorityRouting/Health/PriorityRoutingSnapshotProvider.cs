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
    }

    /// <summary>
    /// Takes a snapshot of one client's backends.
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

        var optionsClient = ownHandler ? clientName : null;
        var routing = _options.Get(PriorityRoutingHandlerNames.OptionsName(optionsClient)).Routing;

        return PriorityRoutingSnapshot.Create(routing, PriorityRoutingHandlerPipeline.ResolveSharedState(routing, _services), _timeProvider.GetUtcNow());
    }
}
