using Microsoft.Extensions.Diagnostics.HealthChecks;
using Polly.PriorityRouting;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>
/// Registers the priority routing health check.
/// </summary>
public static class PriorityRoutingHealthChecksBuilderExtensions
{
    /// <summary>
    /// Adds a health check for a client registered with <c>AddPriorityRoutingHandler</c>: Healthy while its best tier has
    /// a backend in rotation, Degraded when the whole best tier is out, and <paramref name="failureStatus"/> (Unhealthy by
    /// default) when every backend is out. The report's data lists each backend's state.
    /// </summary>
    /// <param name="builder">The health checks builder.</param>
    /// <param name="clientName">The name of the <see cref="HttpClient"/>.</param>
    /// <param name="name">The name of the check; by default <c>priority-routing-{clientName}</c>.</param>
    /// <param name="failureStatus">The status when every backend is out; by default Unhealthy.</param>
    /// <param name="tags">Tags of the check.</param>
    /// <returns>The same builder.</returns>
    public static IHealthChecksBuilder AddPriorityRoutingHealthCheck(
        this IHealthChecksBuilder builder,
        string clientName,
        string? name = null,
        HealthStatus? failureStatus = null,
        IEnumerable<string>? tags = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(clientName);

        builder.Services.AddPriorityRoutingSnapshots();
        return builder.Add(new HealthCheckRegistration(
            name ?? $"priority-routing-{clientName}",
            services => new PriorityRoutingHealthCheck(clientName, services.GetRequiredService<PriorityRoutingSnapshotProvider>()),
            failureStatus,
            tags));
    }

    internal static IServiceCollection AddPriorityRoutingSnapshots(this IServiceCollection services)
    {
        Microsoft.Extensions.DependencyInjection.Extensions.ServiceCollectionDescriptorExtensions.TryAddSingleton<PriorityRoutingSnapshotProvider>(services);
        Microsoft.Extensions.DependencyInjection.Extensions.ServiceCollectionDescriptorExtensions.TryAddSingleton<LivePipelines>(services);
        Microsoft.Extensions.DependencyInjection.Extensions.ServiceCollectionDescriptorExtensions.TryAddEnumerable(
            services, ServiceDescriptor.Singleton<Microsoft.Extensions.Hosting.IHostedService, LivePipelinesStartup>());
        return services;
    }
}
