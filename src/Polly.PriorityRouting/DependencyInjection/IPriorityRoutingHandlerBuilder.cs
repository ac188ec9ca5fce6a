using Microsoft.Extensions.DependencyInjection;

namespace Polly.PriorityRouting;

/// <summary>
/// Returned by <c>AddPriorityRoutingHandler</c> so that the handler can be configured further.
/// </summary>
public interface IPriorityRoutingHandlerBuilder
{
    /// <summary>
    /// Gets the name of the resilience pipeline, which is also the name of its <see cref="PriorityRoutingHandlerOptions"/>.
    /// </summary>
    string PipelineName { get; }

    /// <summary>
    /// Gets the service collection.
    /// </summary>
    IServiceCollection Services { get; }
}
