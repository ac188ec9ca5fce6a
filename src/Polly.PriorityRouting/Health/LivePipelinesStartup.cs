using Microsoft.Extensions.Hosting;

namespace Polly.PriorityRouting;

/// <summary>
/// Starts <see cref="LivePipelines"/> with the host, so that a reload rejected before any client or health check was
/// used is logged too. Without a host, the registry starts with the first client or snapshot.
/// </summary>
internal sealed class LivePipelinesStartup(LivePipelines live) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        GC.KeepAlive(live);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
